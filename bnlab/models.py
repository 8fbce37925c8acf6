"""Flax linen models with the normalization injected: Dense/Conv -> norm -> activation.

Normalization hyperparameters (BN momentum and epsilon) and the init scale are module fields that
may be traced values, so they can differ per member of a vmapped sweep.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

ACTIVATIONS = {'relu': nn.relu, 'sigmoid': nn.sigmoid, 'tanh': nn.tanh}
NORMS = ('batch', 'layer', 'group', 'instance', 'none')
MODELS = ('mlp',)


def kernel_init(scale):
  """Fan-in truncated normal with variance scale/fan_in (1 = LeCun, 2 = He); scale may be traced."""
  return nn.initializers.variance_scaling(scale, 'fan_in', 'truncated_normal')


class Norm(nn.Module):
  """The normalization layer named by `kind`, over the features (last axis)."""
  kind: str
  momentum: Any = 0.9
  epsilon: Any = 1e-5
  groups: int = 8

  @nn.compact
  def __call__(self, x, train):
    if self.kind == 'batch':
      return nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                          epsilon=self.epsilon)(x)
    if self.kind == 'layer':
      return nn.LayerNorm(epsilon=self.epsilon)(x)
    if self.kind == 'group':
      return nn.GroupNorm(num_groups=self.groups, epsilon=self.epsilon)(x)
    if self.kind == 'instance':
      return nn.GroupNorm(num_groups=None, group_size=1, epsilon=self.epsilon)(x)
    return x


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

  @nn.compact
  def __call__(self, x, train=False):
    x = x.reshape((x.shape[0], -1))
    for width in self.widths:
      # The layer's bias is useless before a norm that subtracts the mean: BN's beta replaces it.
      x = nn.Dense(width, use_bias=self.norm == 'none', kernel_init=kernel_init(self.init_scale))(x)
      x = Norm(self.norm, self.bn_momentum, self.bn_epsilon, self.groups)(x, train)
      x = ACTIVATIONS[self.activation](x)
    return nn.Dense(self.num_classes, kernel_init=kernel_init(self.init_scale))(x)


def make_model(model_config, num_classes, model_hparams):
  """The linen module for a (static) model config and per-member dynamic hyperparameters."""
  return MLP(widths=tuple(model_config.widths), num_classes=num_classes, norm=model_config.norm,
             activation=model_config.activation, groups=model_config.groups,
             bn_momentum=model_hparams['bn_momentum'], bn_epsilon=model_hparams['bn_epsilon'],
             init_scale=model_hparams['init_scale'])
