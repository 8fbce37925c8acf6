"""Flax linen models with the normalization injected: Dense/Conv -> norm -> activation.

Norms live in one registry, `NORMS`: each entry builds its layer as a factory (a
`functools.partial` of the Flax module, as Flax's `examples/imagenet/models.py` passes its
norm), says whether it keeps running averages, and checks the model section it is used in.
Normalization hyperparameters (BN momentum and epsilon) and the init scale are module fields that
may be traced values, so they can differ per member of a vmapped sweep. `batch_scratch` is
bnlab's own batch norm: the pure functions of `bnlab.norms` behind a `jax.custom_vjp` whose
backward pass is the hand-derived one, with Flax BatchNorm's parameter and `batch_stats` names.

`model.name=PACKAGE.MODULE:ATTR` names a linen module of the user's instead (`custom_class`):
built with num_classes, those of bnlab's per-member fields it declares, and model.kwargs.
"""

import dataclasses
import functools
import importlib
import inspect
from typing import Any, Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from bnlab import densenet
from bnlab import norms
from bnlab import validate
from bnlab.records import ConfigError

ACTIVATIONS = {'relu': nn.relu, 'sigmoid': nn.sigmoid, 'tanh': nn.tanh}


def kernel_init(scale: Any) -> Callable:
  """Fan-in truncated normal with variance scale/fan_in (1 = LeCun, 2 = He); scale may be traced."""
  return nn.initializers.variance_scaling(scale, 'fan_in', 'truncated_normal')


def conv_layer(width: int, size: int, strides: int, *, bias: bool,
               init_scale: Any) -> nn.Conv:
  """A size x size convolution ('SAME' padding); no bias before a norm that has its own beta."""
  return nn.Conv(width, (size, size), (strides, strides), use_bias=bias,
                 kernel_init=kernel_init(init_scale))


@jax.custom_vjp
def scratch_batch_norm(x, gamma, beta, eps):
  """Training-mode batch norm whose gradient is `norms.batch_norm_backward`, not autodiff."""
  return norms.batch_norm_forward(x, gamma, beta, eps)[0]


def _scratch_fwd(x, gamma, beta, eps):
  y, cache = norms.batch_norm_forward(x, gamma, beta, eps)
  return y, (cache, eps)


def _scratch_bwd(residuals, dy):
  cache, eps = residuals
  dx, dgamma, dbeta = norms.batch_norm_backward(dy, cache)
  return dx, dgamma, dbeta, jnp.zeros_like(eps)  # eps is a hyperparameter: never trained.


scratch_batch_norm.defvjp(_scratch_fwd, _scratch_bwd)


class ScratchBatchNorm(nn.Module):
  """Batch norm over all axes but the last, built on `bnlab.norms`; a drop-in for nn.BatchNorm.

  Same names as Flax's module (params `scale`, `bias`; `batch_stats` `mean`, `var`), same init,
  same running-average update (skipped while initializing). `momentum` and `epsilon` may be
  traced, so each member of a vmapped sweep can have its own.
  """
  use_running_average: bool
  momentum: Any = 0.9
  epsilon: Any = 1e-5

  @nn.compact
  def __call__(self, x):
    features = (x.shape[-1],)
    gamma = self.param('scale', nn.initializers.ones, features)
    beta = self.param('bias', nn.initializers.zeros, features)
    mean = self.variable('batch_stats', 'mean', lambda: jnp.zeros(features, jnp.float32))
    var = self.variable('batch_stats', 'var', lambda: jnp.ones(features, jnp.float32))
    if self.use_running_average:
      return norms.batch_norm_inference(x, gamma, beta, mean.value, var.value, self.epsilon)
    if not self.is_initializing():
      # The same moments the forward pass takes (XLA computes them once); no gradient flows
      # through the running averages, as in Flax.
      mu, sigma2 = jax.lax.stop_gradient(norms.moments(x, norms.batch_axes(x)))
      mean.value = norms.update_running(mean.value, mu.reshape(features), self.momentum)
      var.value = norms.update_running(var.value, sigma2.reshape(features), self.momentum)
    return scratch_batch_norm(x, gamma, beta, self.epsilon)


# A norm layer's factory: called with no arguments it gives a fresh layer, x -> normalized x.
LayerDef = Callable[[], Callable[[jax.Array], jax.Array]]


def _identity(x: jax.Array) -> jax.Array:
  return x


# Every factory takes the same keywords (train, momentum, epsilon, groups, ndim: the rank of the
# input) and ignores those it has no use for, so Norm builds any of them with one call.
def _batch(*, train, momentum, epsilon, **_) -> LayerDef:
  """Flax's BatchNorm: the batch's statistics in training, the running averages otherwise."""
  return functools.partial(nn.BatchNorm, use_running_average=not train, momentum=momentum,
                           epsilon=epsilon)


def _batch_scratch(*, train, momentum, epsilon, **_) -> LayerDef:
  """bnlab's own batch norm (ScratchBatchNorm): the same names, numbers and running averages."""
  return functools.partial(ScratchBatchNorm, use_running_average=not train, momentum=momentum,
                           epsilon=epsilon)


def _layer(*, epsilon, ndim, **_) -> LayerDef:
  """Layer norm over all of an example's values, features and pixels alike."""
  return functools.partial(nn.LayerNorm, epsilon=epsilon, reduction_axes=tuple(range(1, ndim)))


def _group(*, epsilon, groups, **_) -> LayerDef:
  """Group norm over each group of channels with its pixels: one group is layer norm."""
  return functools.partial(nn.GroupNorm, num_groups=groups, epsilon=epsilon)


def _instance(*, epsilon, **_) -> LayerDef:
  """Instance norm: group norm with one channel per group, over that channel's pixels."""
  return functools.partial(nn.GroupNorm, num_groups=None, group_size=1, epsilon=epsilon)


def _none(**_) -> LayerDef:
  """No normalization; nothing enters the parameter tree."""
  return lambda: _identity


class NormKind(NamedTuple):
  """One entry of NORMS: how to build the layer, what state it keeps, what it needs."""
  factory: Callable[..., LayerDef]  # (train=, momentum=, epsilon=, groups=, ndim=) -> LayerDef.
  running_averages: bool  # Keeps `batch_stats` that evaluation may use (bn_eval modes).
  check: Callable[[ml_collections.ConfigDict], None]  # Raises ConfigError on a bad model section.


# The order is the order the choices are listed in (model.norm's error message).
NORMS: dict[str, NormKind] = {
    'batch': NormKind(_batch, True, validate.no_norm_check),
    'batch_scratch': NormKind(_batch_scratch, True, validate.no_norm_check),
    'layer': NormKind(_layer, False, validate.no_norm_check),
    'group': NormKind(_group, False, validate.norm_groups),
    'instance': NormKind(_instance, False, validate.norm_pixels),
    'none': NormKind(_none, False, validate.no_norm_check),
}
BATCH_NORMS = tuple(name for name, kind in NORMS.items() if kind.running_averages)


def check_norm(model_config: ml_collections.ConfigDict) -> None:
  """Raises a one-line ConfigError if model.norm is unknown or cannot work on this model section;
  run before anything compiles."""
  if model_config.norm not in NORMS:
    raise ConfigError(f'model.norm={model_config.norm!r} is not one of: {", ".join(NORMS)}')
  NORMS[model_config.norm].check(model_config)


class Norm(nn.Module):
  """The normalization layer named by `kind`, over the features (last axis), built by its
  factory in NORMS.

  Only a name around the layer, kept so the parameter tree keeps its paths
  (`Norm_0/BatchNorm_0/scale`): checkpoints, and code that reads the tree by path, rely on them.
  """
  kind: str
  momentum: Any = 0.9
  epsilon: Any = 1e-5
  groups: int = 8

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    layer = NORMS[self.kind].factory(train=train, momentum=self.momentum, epsilon=self.epsilon,
                                     groups=self.groups, ndim=x.ndim)
    return layer()(x)


class MLP(nn.Module):
  """Hidden layers of Dense -> norm -> activation; a Dense head giving the logits."""
  widths: tuple
  num_classes: int
  norm: str = 'batch'
  activation: str = 'relu'
  groups: int = 8
  bn_momentum: Any = 0.9
  bn_epsilon: Any = 1e-5
  init_scale: Any = 1.0
  depth: int = 1  # Unused: the fields of every model are the same (see make_model).
  growth_rate: int = 12  # Unused, as depth.

  @nn.compact
  def __call__(self, x, train=False):
    x = x.reshape((x.shape[0], -1))
    for width in self.widths:
      # The layer's bias is useless before a norm that subtracts the mean: BN's beta replaces it.
      x = nn.Dense(width, use_bias=self.norm == 'none', kernel_init=kernel_init(self.init_scale))(x)
      x = Norm(self.norm, self.bn_momentum, self.bn_epsilon, self.groups)(x, train)
      x = ACTIVATIONS[self.activation](x)
    return nn.Dense(self.num_classes, kernel_init=kernel_init(self.init_scale))(x)


class CNN(MLP):
  """Blocks of 3x3 Conv -> norm -> activation -> 2x2 max pool (while the image is larger than
  1x1), one block per width; global average pooling and a Dense head."""

  @nn.compact
  def __call__(self, x, train=False):
    for width in self.widths:
      x = conv_layer(width, 3, 1, bias=self.norm == 'none', init_scale=self.init_scale)(x)
      x = Norm(self.norm, self.bn_momentum, self.bn_epsilon, self.groups)(x, train)
      x = ACTIVATIONS[self.activation](x)
      if x.shape[1] > 1 or x.shape[2] > 1:
        x = nn.max_pool(x, (2, 2), strides=(2, 2), padding='SAME')
    return nn.Dense(self.num_classes, kernel_init=kernel_init(self.init_scale))(x.mean((1, 2)))


class ResidualBlock(nn.Module):
  """conv -> norm -> act -> conv -> norm, plus the input; a strided 1x1 conv + norm projects the
  input where the width or the resolution changes (otherwise the skip is the identity)."""
  width: int
  strides: int
  conv: Callable  # (width, kernel size, strides) -> a Conv module.
  norm: Callable  # () -> a Norm module.
  act: Callable

  @nn.compact
  def __call__(self, x, train):
    y = self.act(self.norm()(self.conv(self.width, 3, self.strides)(x), train))
    y = self.norm()(self.conv(self.width, 3, 1)(y), train)
    if x.shape[-1] != self.width or self.strides != 1:
      x = self.norm()(self.conv(self.width, 1, self.strides)(x), train)
    return self.act(x + y)


class ResNet(MLP):
  """A 3x3 conv stem, then one stage per width of `depth` residual blocks each (the first block
  of every later stage halves the resolution); global average pooling and a Dense head."""

  @nn.compact
  def __call__(self, x, train=False):
    # Factories, not modules, go to the blocks: each block creates its own layers.
    norm = functools.partial(Norm, self.norm, self.bn_momentum, self.bn_epsilon, self.groups)
    conv = functools.partial(conv_layer, bias=self.norm == 'none', init_scale=self.init_scale)
    act = ACTIVATIONS[self.activation]
    x = act(norm()(conv(self.widths[0], 3, 1)(x), train))
    for stage, width in enumerate(self.widths):
      for block in range(self.depth):
        strides = 2 if stage > 0 and block == 0 and x.shape[1] > 1 else 1
        x = ResidualBlock(width, strides, conv, norm, act)(x, train)
    return nn.Dense(self.num_classes, kernel_init=kernel_init(self.init_scale))(x.mean((1, 2)))


MODELS = {'mlp': MLP, 'cnn': CNN, 'resnet': ResNet,
          # bnlab.densenet sits below this module: its DenseNet gets bnlab's layers handed in.
          'densenet': functools.partial(densenet.DenseNet, layers=densenet.Layers(
              Norm, conv_layer, kernel_init, tuple(ACTIVATIONS.items())))}
# bnlab's model fields that are traced per member (member.MODEL_HPARAMS); a module of the user's
# gets those of them it declares.
DYNAMIC_FIELDS = ('bn_momentum', 'bn_epsilon', 'init_scale')


def is_custom(name: Any) -> bool:
  """Whether model.name is `PACKAGE.MODULE:ATTR`, a Flax module of the user's: bnlab's own
  names have no ':', so only such a name ever imports a module of the user's."""
  return isinstance(name, str) and ':' in name


def module_fields(cls: type) -> tuple[str, ...]:
  """The dataclass fields a linen module class is constructed with (Flax's parent and name
  aside)."""
  return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ('parent', 'name'))


def _call_method(cls: type) -> Callable | None:
  """The class's own `__call__` (looked up in its MRO, not the metaclass's `type.__call__`)."""
  return next((c.__dict__['__call__'] for c in cls.__mro__ if '__call__' in c.__dict__), None)


def _first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f'{type(error).__name__}: {text[0]}' if text else type(error).__name__


def custom_class(name: str) -> type:
  """The flax.linen.Module class `PACKAGE.MODULE:ATTR` names; a one-line ConfigError saying
  what is wrong with it otherwise (run before anything compiles)."""
  where = f'model.name={name!r}'
  module_name, _, attr = name.partition(':')
  if not module_name or not attr:
    raise ConfigError(f'{where} must name a Flax module as PACKAGE.MODULE:ATTR')
  try:
    module = importlib.import_module(module_name)
  except Exception as e:  # pylint: disable=broad-except  # The user's module may raise anything.
    raise ConfigError(f'{where}: cannot import {module_name} ({_first_line(e)}); it must be '
                      'importable from the Python path (PYTHONPATH)') from None
  cls = getattr(module, attr, None)
  if cls is None:
    raise ConfigError(f'{where}: module {module_name} has no attribute {attr!r}')
  if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
    what = 'class' if isinstance(cls, type) else type(cls).__name__
    raise ConfigError(f'{where}: {attr} is a {what}, not a flax.linen.Module subclass')
  call = _call_method(cls)
  if call is None or 'train' not in inspect.signature(call).parameters:
    raise ConfigError(f'{where}: {attr}.__call__ takes no `train` argument; bnlab calls it as '
                      'apply(variables, x, train=...)')
  if 'num_classes' not in module_fields(cls):
    raise ConfigError(f'{where}: {attr} declares no field num_classes; bnlab constructs it '
                      'with num_classes=...')
  return cls


def check_custom(model_config: ml_collections.ConfigDict) -> None:
  """A model section naming a module of the user's: the class, and model.kwargs against the
  fields it declares."""
  cls = custom_class(model_config.name)
  fields = module_fields(cls)
  for key in model_config.get('kwargs') or {}:
    if key == 'num_classes':
      raise ConfigError('model.kwargs.num_classes: bnlab sets num_classes itself, from the '
                        'dataset')
    if key in DYNAMIC_FIELDS:
      raise ConfigError(f'model.kwargs.{key}: bnlab sets {key} itself, per member; set '
                        f'model.{key} instead')
    if key not in fields:
      raise ConfigError(f'model.kwargs.{key}: {model_config.name} declares no field {key!r}; '
                        f'its fields: {", ".join(fields)}')
  if model_config.bn_eval == 'precise' and 'bn_momentum' not in fields:
    # Precise BN reruns the model with momentum 0, which only a declared bn_momentum reaches.
    raise ConfigError(f"model.bn_eval='precise' needs {model_config.name} to declare the field "
                      'bn_momentum (used as its BatchNorm momentum)')


def _make_custom(model_config, num_classes, model_hparams):
  cls = custom_class(model_config.name)
  fields = module_fields(cls)
  kwargs = model_config.get('kwargs') or {}
  kwargs = kwargs.to_dict() if hasattr(kwargs, 'to_dict') else dict(kwargs)
  dynamic = {k: v for k, v in model_hparams.items() if k in fields}
  return cls(num_classes=num_classes, **dynamic, **kwargs)


def make_model(model_config: ml_collections.ConfigDict, num_classes: int,
               model_hparams: Mapping[str, Any]) -> nn.Module:
  """The linen module for a (static) model config and per-member dynamic hyperparameters.

  `model_hparams` holds `bn_momentum`, `bn_epsilon` and `init_scale`, numbers or traced
  per-member values. A `PACKAGE.MODULE:ATTR` model gets those it declares, num_classes and
  model.kwargs.
  """
  if is_custom(model_config.name):
    return _make_custom(model_config, num_classes, model_hparams)
  return MODELS[model_config.name](
      widths=tuple(model_config.widths), num_classes=num_classes, norm=model_config.norm,
      activation=model_config.activation, groups=model_config.groups, depth=model_config.depth,
      growth_rate=model_config.growth_rate,
      bn_momentum=model_hparams['bn_momentum'], bn_epsilon=model_hparams['bn_epsilon'],
      init_scale=model_hparams['init_scale'])
