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
# sweep.select: which epoch's validation metrics rank a trial (its last, or its best by
# sweep.metric). Every record also carries BEST_EPOCH and `<metric>_best` (`with_best_epoch`).
SELECTS = ('last', 'best')
BEST_EPOCH = 'best_epoch'

OK, DIVERGED, PRUNED = 'ok', 'diverged', 'pruned'
STOPPED = 'stopped'  # By train.patience: no better sweep.metric for that many epochs.
# Read back from progress.jsonl only: stopped before its last epoch, or done but not yet written.
PARTIAL, TRAINED = 'partial', 'trained'

# Config fields that change no result: a workdir may be resumed with other values of them.
RESULT_NEUTRAL = ('train.checkpoint_every', 'train.keep_checkpoints')
# Config fields added after workdirs were written, at the value that keeps the old behaviour: a
# workdir whose config.json lacks one matches a config that leaves it at that value, and its
# checkpoints and journalled trials keep their names (checkpoint.chunk_key leaves them out).
ADDED_FIELDS = {'sweep.pruner': 'none', 'sweep.pruner_warmup': 1, 'sweep.pruner_percentile': 50.0,
                'dataset.scaling': 'standardize', 'sweep.gp.batch_size': 8,
                'sweep.ask': 'batch', 'train.patience': 0, 'sweep.select': 'last',
                'model.growth_rate': 12, 'sweep.objectives': ''}


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


# The second key of the ranking, per sweep metric: (metric, mode). Accuracy on a small
# validation split ties often (one of 287 digits examples is 0.0035); the loss tells tied trials
# apart by how confidently right they are, and a loss metric is told apart by accuracy.
TIE_BREAK = {'val_accuracy': ('val_loss', 'min'), 'val_loss': ('val_accuracy', 'max'),
             'train_loss': ('val_accuracy', 'max')}


def tie_break(metric: str) -> tuple[str, str]:
  """(metric, mode) of the second key that orders trials tied on `metric` (see `ranked`)."""
  return TIE_BREAK.get(metric, ('val_loss', 'min'))


def ranked(records: Iterable[TrialRecord], metric: str, mode: str) -> list[TrialRecord]:
  """Trials that count for `metric`, best first; diverged never rank.

  Ties on `metric` are broken by a second key, `tie_break(metric)`: for `val_accuracy` the
  lower `val_loss` first; for a loss metric (`val_loss`, `train_loss`) the higher
  `val_accuracy` first. A trial without a finite second key comes after the tied ones that
  have it; what is still tied goes by trial id, lowest first.
  """
  second, second_mode = tie_break(metric)

  def key(r):
    tie = r.value(second)
    tie = -oriented(tie, second_mode) if math.isfinite(tie) else math.inf
    return (-oriented(r.value(metric), mode), tie, r.trial)

  return sorted((r for r in records if r.scored(metric)), key=key)


def top_tie(records: Iterable[TrialRecord], metric: str, mode: str) -> str:
  """A sentence when several trials share the best value of `metric` (how many, the value, the
  second key that ranked them), e.g. '3 trials tie at 0.9895 val_accuracy; ranked by val_loss
  (lower first), then trial id'; '' when the best is alone (or there is none). Ties are exact
  equality, as in `ranked`: a value shared only after rounding is no tie."""
  ranking = ranked(records, metric, mode)
  if not ranking:
    return ''
  best = ranking[0].value(metric)
  tied = sum(1 for r in ranking if r.value(metric) == best)
  if tied < 2:
    return ''
  second, second_mode = tie_break(metric)
  order = 'lower' if second_mode == 'min' else 'higher'
  return (f'{tied} trials tie at {best:.4f} {metric}; ranked by {second} ({order} first), '
          'then trial id')


def best_epoch(record: TrialRecord, metric: str, mode: str) -> tuple[int | None, dict]:
  """The first epoch of `record`'s history with its best finite `metric` (none from a diverged
  trial's blow-up on), and that history row; (None, {}) when no epoch has one."""
  last = record.diverged_epoch - 1 if record.status == DIVERGED and record.diverged_epoch \
      else len(record.history)
  best, row = None, {}
  for candidate in record.history[:last]:
    value = candidate.get(metric, math.nan)
    if math.isfinite(value) and (best is None or oriented(value, mode) > oriented(row[metric],
                                                                                     mode)):
      best, row = candidate['epoch'], candidate
  return best, row


def with_best_epoch(record: TrialRecord, metric: str, mode: str,
                    select: str = 'last') -> TrialRecord:
  """`record` with BEST_EPOCH and `<metric>_best` in its metrics; with select='best' its
  validation and train metrics are that epoch's (test_accuracy stays the last epoch's: the
  parameters a sweep keeps are the last ones; best_config.py trains to the best epoch)."""
  epoch, row = best_epoch(record, metric, mode)
  metrics = {**record.metrics, BEST_EPOCH: float(epoch) if epoch else math.nan,
             f'{metric}_best': float(row[metric]) if row else math.nan}
  if select == 'best' and row and record.status != DIVERGED:
    metrics.update({m: float(row[m]) for m in SCALARS if m in row})
  return dataclasses.replace(record, metrics=metrics)


def count(n: int, noun: str) -> str:
  """`n` and `noun`, plural unless n is 1: '1 trial', '3 trials'."""
  return f'{n} {noun}' if n == 1 else f'{n} {noun}s'


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
