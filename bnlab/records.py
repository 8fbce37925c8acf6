"""The leaf of bnlab: the user-error type, the typed trial record, the metrics, ranking, formatting.

Every layer above speaks in `TrialRecord`s: the population loop makes them, strategies rank them,
the writer turns them into results.csv and history.jsonl, and the report reads them back from
those files. Nothing here imports anything of bnlab's, so every module may import it.
"""

import dataclasses
import math
from typing import Any, Iterable

# The final metrics of a trial, in the column order of results.csv.
METRICS = ('val_accuracy', 'val_loss', 'test_accuracy', 'train_loss')
# The per-epoch metrics of a history row (and of a progress.jsonl row).
SCALARS = ('train_loss', 'val_loss', 'val_accuracy')
# What a sweep may select by (sweep.metric), with the mode that means better.
SELECTABLE = {'val_accuracy': 'max', 'val_loss': 'min', 'train_loss': 'min'}
# With model.bn_eval batch or precise: the same model scored with its running averages.
RUNNING = ('val_loss_running', 'val_accuracy_running')

OK, DIVERGED, PRUNED = 'ok', 'diverged', 'pruned'
# Read back from progress.jsonl only: stopped before its last epoch, or done but not yet written.
PARTIAL, TRAINED = 'partial', 'trained'

# Config fields that change no result: a workdir may be resumed with other values of them.
RESULT_NEUTRAL = ('train.checkpoint_every',)
# Config fields added after workdirs were written, at the value that keeps the old behaviour: a
# workdir whose config.json lacks one matches a config that leaves it at that value.
ADDED_FIELDS = {'sweep.pruner': 'none', 'sweep.pruner_warmup': 1, 'sweep.pruner_percentile': 50.0}


class ConfigError(ValueError):
  """A user error in the config or the workdir: the message is one line for the terminal."""


@dataclasses.dataclass
class TrialRecord:
  """One trial's outcome: its setting, status, final metrics and per-epoch history.

  `metrics` holds METRICS (NaN where there is none: a diverged trial, a test not yet scored)
  and any extra final numbers (RUNNING, the spread over seeds: `<metric>_std`, `_ci95`).
  `extras` holds what a strategy adds (`seeds`, per-seed values, a rung), JSON-able.
  """
  trial: int
  setting: dict[str, Any]
  status: str
  metrics: dict[str, float]
  epochs: int
  seconds: float = math.nan
  # 1-based epoch a diverged trial blew up in (PBT: also an ok trial whose state was replaced
  # after it blew up, see LINEAGE).
  diverged_epoch: int | None = None
  history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  extras: dict[str, Any] = dataclasses.field(default_factory=dict)

  def value(self, metric: str) -> float:
    """The final value of `metric`, NaN where the trial has none."""
    return float(self.metrics.get(metric, math.nan))

  def scored(self, metric: str) -> bool:
    """Whether the trial counts as a result for `metric`: not diverged, a finite value."""
    return self.status != DIVERGED and math.isfinite(self.value(metric))

  def to_json(self) -> dict[str, Any]:
    """A JSON-able dict (tuples become lists; NaN stays NaN, which Python's json keeps)."""
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, data: dict[str, Any]) -> 'TrialRecord':
    setting = {f: tuple(v) if isinstance(v, list) else v for f, v in data['setting'].items()}
    return cls(**{**data, 'setting': setting})


def ranked(records: Iterable[TrialRecord], metric: str, mode: str) -> list[TrialRecord]:
  """Trials that count for `metric`, best first (ties keep their order); diverged never rank."""
  scored = [r for r in records if r.scored(metric)]
  return sorted(scored, key=lambda r: r.value(metric), reverse=(mode == 'max'))


def oriented(value: float, mode: str) -> float:
  """`value` turned so that higher is better."""
  return value if mode == 'max' else -value


def fmt(value: Any) -> str:
  """A value as a table cell: floats to 4 significant digits (NaN empty), tuples without spaces."""
  if isinstance(value, float):
    return '' if not math.isfinite(value) else f'{value:.4g}'
  return str(value).replace(' ', '')


def jsonable(value: Any) -> Any:
  """A value for a JSON file: tuples as lists, non-finite floats as null, numpy scalars as Python."""
  if hasattr(value, 'item') and not isinstance(value, (list, tuple, dict)):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return list(value) if isinstance(value, tuple) else value

# PBT's lineage: extras[LINEAGE] lists [epoch, source trial] for each exploit step that replaced
# a member's state (results.csv's `lineage` column, `epoch:trial` pairs); history rows carry
# COPIED_FROM, the source trial that epoch (or None).
LINEAGE = 'lineage'
COPIED_FROM = 'copied_from'

# Workdir files the live monitor writes and the report reads.
PROGRESS_FILE = 'progress.jsonl'
TIMING_FILE = 'timing.json'

# Config fields of earlier versions, with the field that replaced each: an old name gets a
# one-line error naming the new one instead of a silent default.
RENAMED = {
    'sweep.eta': 'sweep.halving.eta',
    'sweep.min_epochs': 'sweep.halving.min_epochs',
    'sweep.rounds': 'sweep.coarse_to_fine.rounds',
    'sweep.top_fraction': 'sweep.coarse_to_fine.top_fraction',
    'sweep.pbt_interval': 'sweep.pbt.interval',
    'sweep.pbt_quantile': 'sweep.pbt.quantile',
    'sweep.pbt_resample': 'sweep.pbt.resample',
    'sweep.batch_size': 'sweep.tpe.batch_size',
}


def renamed_message(field: str) -> str:
  """The one line for a config field that an earlier version had and this one renamed."""
  return f'{field} is now {RENAMED[field]}: set --config.{RENAMED[field]} instead'
