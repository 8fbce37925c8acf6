"""DenseNet (Huang et al. 2017): each layer of a dense block sees every earlier feature map of
its block, concatenated, and adds `growth_rate` channels of its own.

A 3x3 conv stem gives widths[0] channels; then one dense block of `depth` layers per width, a
transition (norm -> act -> 1x1 conv to the next width -> 2x2 average pooling) between two
blocks; a final norm -> act, global average pooling and a Dense head. Each layer is
norm -> act -> conv, the paper's BN-ReLU-Conv order, so a block's output channels are its input's
plus depth * growth_rate. model.widths and model.depth mean what they mean for the ResNet: the
channels entering each stage, and the layers (blocks, there) of each stage.

This module sits below bnlab.models in the layers, so it cannot import bnlab's norm and conv: they
are handed in as `Layers` (as Flax's examples/imagenet ResNet takes its `conv` and `norm` as
module definitions), and models.MODELS binds bnlab's, so every norm bnlab offers works here.
"""

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp


class Layers(NamedTuple):
  """The building blocks DenseNet gets from bnlab.models (which imports this module)."""
  norm: Callable  # (kind, momentum, epsilon, groups) -> a module called (x, train): models.Norm.
  conv: Callable  # (width, size, strides, *, bias, init_scale) -> nn.Conv: models.conv_layer.
  kernel_init: Callable  # init scale -> the head's kernel initializer: models.kernel_init.
  activations: tuple  # (name, function) pairs: models.ACTIVATIONS' items (a tuple: hashable).


class DenseLayer(nn.Module):
  """norm -> act -> 3x3 conv of `growth_rate` channels, concatenated after its input."""
  growth_rate: int
  conv: Callable  # (width, kernel size, strides) -> a Conv module.
  norm: Callable  # () -> a Norm module.
  act: Callable

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    y = self.conv(self.growth_rate, 3, 1)(self.act(self.norm()(x, train)))
    return jnp.concatenate([x, y], axis=-1)


class DenseBlock(nn.Module):
  """`depth` dense layers: the last one's input holds the block's input and every layer's output."""
  depth: int
  growth_rate: int
  conv: Callable
  norm: Callable
  act: Callable

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    for _ in range(self.depth):
      x = DenseLayer(self.growth_rate, self.conv, self.norm, self.act)(x, train)
    return x


class Transition(nn.Module):
  """norm -> act -> 1x1 conv to `width` channels -> 2x2 average pooling (while the image is
  larger than 1x1): between two dense blocks, where the resolution halves."""
  width: int
  conv: Callable
  norm: Callable
  act: Callable

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = self.conv(self.width, 1, 1)(self.act(self.norm()(x, train)))
    if x.shape[1] > 1 or x.shape[2] > 1:
      # Padded positions are not counted, so an odd side's last row averages real pixels only.
      x = nn.avg_pool(x, (2, 2), strides=(2, 2), padding='SAME', count_include_pad=False)
    return x


class DenseNet(nn.Module):
  """The model of model.name='densenet'; bnlab's other models have the same fields but
  growth_rate (see models.make_model), and `layers`, which models.MODELS sets."""
  widths: tuple
  num_classes: int
  norm: str = 'batch'
  activation: str = 'relu'
  groups: int = 8
  bn_momentum: Any = 0.9
  bn_epsilon: Any = 1e-5
  init_scale: Any = 1.0
  depth: int = 2
  growth_rate: int = 12
  layers: Layers | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    layers = self.layers
    # Factories, not modules, go to the blocks: each block creates its own layers.
    def norm():
      return layers.norm(self.norm, self.bn_momentum, self.bn_epsilon, self.groups)

    def conv(width, size, strides):
      return layers.conv(width, size, strides, bias=self.norm == 'none',
                         init_scale=self.init_scale)

    act = dict(layers.activations)[self.activation]
    x = conv(self.widths[0], 3, 1)(x)
    for stage, width in enumerate(self.widths):
      if stage > 0:
        x = Transition(width, conv, norm, act)(x, train)
      x = DenseBlock(self.depth, self.growth_rate, conv, norm, act)(x, train)
    x = act(norm()(x, train))  # The last layer's output is not normalized inside its block.
    return nn.Dense(self.num_classes, kernel_init=layers.kernel_init(self.init_scale))(
        x.mean((1, 2)))

