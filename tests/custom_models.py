"""Flax modules bnlab did not write, for tests/test_custom_model.py: `model.name` names them as
`tests.custom_models:ATTR` (the repository root is on the Python path, as for any user package).
"""

from typing import Any

import flax.linen as nn


class BNNet(nn.Module):
  """Dense -> BatchNorm (momentum from bnlab's per-member model.bn_momentum) -> relu -> Dense."""
  num_classes: int
  hidden: int = 16  # Set through model.kwargs.hidden.
  bn_momentum: Any = 0.9

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Dense(self.hidden, use_bias=False)(x.reshape((x.shape[0], -1)))
    x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum)(x)
    return nn.Dense(self.num_classes)(nn.relu(x))


class NoNorm(nn.Module):
  """A module that keeps no batch_stats and declares none of bnlab's per-member fields."""
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    return nn.Dense(self.num_classes)(x.reshape((x.shape[0], -1)))


class NoTrain(nn.Module):
  """Its __call__ takes no `train`: refused."""
  num_classes: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.num_classes)(x.reshape((x.shape[0], -1)))


class NoNumClasses(nn.Module):
  """Declares no num_classes: refused."""
  features: int = 10

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    return nn.Dense(self.features)(x.reshape((x.shape[0], -1)))


class NotAModule:
  """A plain class: refused."""

  def __call__(self, x, train=False):
    return x


NOT_A_CLASS = 3
