"""Pruners for lists of trials: Optuna's MedianPruner and PercentilePruner rules, per epoch.

After a trial's epoch t (t >= sweep.pruner_warmup) its best metric so far is compared with the
other trials' metric at their own epoch t: below their median (`sweep.pruner=median`), or below
their top sweep.pruner_percentile percent (`sweep.pruner=percentile`, Optuna's meaning of the
percentile), it stops. That is Optuna's PercentilePruner with one difference made for trials
trained side by side: the others are every trial that reached epoch t, finished, pruned or still
running (`Board`), where Optuna counts finished trials only (in a population none has finished
when the first pruning is due). Values that are not finite (diverged) do not count; with no
other value at epoch t nothing is pruned.
"""

import collections
from typing import Iterable, NamedTuple

import ml_collections
import numpy as np

from bnlab import records
from bnlab import validate

PRUNERS = ('none', 'median', 'percentile')
# Strategies that train lists of trials through Context.train, where a pruner acts.
PRUNABLE = ('grid', 'random', 'quasirandom', 'coarse_to_fine', 'tpe', 'gp')


class Pruner(NamedTuple):
  """Stop a trial whose metric after epoch t >= warmup is below the `keep` top percent of the
  other trials' at their epoch t."""
  keep: float
  warmup: int


def from_config(config: ml_collections.ConfigDict) -> Pruner | None:
  """The sweep's pruner, or None for sweep.pruner='none'."""
  name = config.sweep.pruner
  if name == 'none':
    return None
  return Pruner(50.0 if name == 'median' else float(config.sweep.pruner_percentile),
                int(config.sweep.pruner_warmup))


def check(config: ml_collections.ConfigDict) -> None:
  """sweep.pruner and its fields: a known pruner, on a strategy that trains lists, one seed."""
  sweep = config.sweep
  validate.choice(config, 'sweep.pruner', PRUNERS)
  _check_patience(config)
  if sweep.pruner == 'none':
    return
  if sweep.strategy not in PRUNABLE:
    raise records.ConfigError(
        f'sweep.pruner={sweep.pruner!r}: sweep.strategy={sweep.strategy!r} stops trials by its '
        f'own rule; a pruner works with {", ".join(PRUNABLE)}')
  if sweep.seeds != 1:
    raise records.ConfigError(f'sweep.seeds={sweep.seeds!r}: sweep.pruner={sweep.pruner!r} '
                              'takes seeds=1 (a setting\'s seeds would be pruned one by one)')


def _check_patience(config: ml_collections.ConfigDict) -> None:
  """train.patience: off, or an epoch count on a strategy that trains lists, one seed."""
  patience, strategy = config.train.patience, config.sweep.strategy
  if not patience:
    return
  if strategy not in PRUNABLE:
    raise records.ConfigError(
        f'train.patience={patience}: sweep.strategy={strategy!r} stops trials by its own rule; '
        f'early stopping works with {", ".join(PRUNABLE)}')
  if config.sweep.seeds != 1:
    raise records.ConfigError(f'sweep.seeds={config.sweep.seeds!r}: train.patience={patience} '
                              'takes seeds=1 (a setting\'s seeds would stop one by one)')


def stalled(board: 'Board', trial: int, epoch: int, patience: int) -> bool:
  """Whether `trial`'s best value has not improved over its last `patience` epochs."""
  return 0 < patience < epoch and board.best(trial, epoch) <= board.best(trial, epoch - patience)


class Board:
  """Every trial's metric (turned so that higher is better) at each of its own epochs."""

  def __init__(self):
    self.values = collections.defaultdict(dict)  # {epoch: {trial: value}}

  def add(self, trial: int, epoch: int, value: float) -> None:
    if np.isfinite(value):
      self.values[epoch][trial] = float(value)

  def add_record(self, record: records.TrialRecord, metric: str, mode: str) -> None:
    """The values of a trial that stopped; none from the epoch it diverged in on."""
    last = record.diverged_epoch - 1 if record.status == records.DIVERGED else len(record.history)
    for row in record.history[:last]:
      self.add(record.trial, row['epoch'], records.oriented(row.get(metric, np.nan), mode))

  def others(self, trial: int, epoch: int) -> np.ndarray:
    """The other trials' values at their `epoch`."""
    return np.asarray([v for t, v in self.values[epoch].items() if t != trial], np.float64)

  def best(self, trial: int, epoch: int) -> float:
    """`trial`'s best value over its epochs 1..`epoch` (-inf if it has none)."""
    seen = [self.values[e][trial] for e in range(1, epoch + 1) if trial in self.values[e]]
    return max(seen, default=-np.inf)


def prunes(pruner: Pruner, best: float, epoch: int, others: Iterable[float]) -> bool:
  """Whether a trial whose best value so far is `best` (higher is better) stops after its
  `epoch`, given the other trials' values at that epoch."""
  others = np.asarray(list(others), np.float64)
  if epoch < max(pruner.warmup, 1) or not others.size:
    return False
  return bool(best < np.percentile(others, 100.0 - pruner.keep))
