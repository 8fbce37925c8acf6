"""Two or more objectives (sweep.objectives): their names, and the Pareto ranking of trials.

`sweep.objectives='val_accuracy:max, param_count:min'` asks for the trials that no other trial
beats on every objective at once: the Pareto front. A trial *dominates* another when it is at
least as good on every objective and better on one. Front 1 is the trials nothing dominates;
front 2 what only front 1 dominates; and so on (non-dominated sorting, Deb et al. 2002). A trial
without a finite value of every objective (diverged) has no front.

The first objective is the sweep's own metric (sweep.metric and sweep.mode): it orders the trials
within a front, ranks best_config.py and drives the importance and the pruner-free strategies'
progress line. Nothing here imports JAX: launch.py's prechecks parse the field before it loads.
"""

from typing import Iterable, NamedTuple, Sequence

import numpy as np

from bnlab import records

# Objectives beyond the validation metrics (records.SELECTABLE): what a trial costs. The model's
# size and its forward pass's floating-point operations per example (XLA's count; bnlab.costs),
# and its share of the training wall time per epoch (members of one program share it).
COSTS = ('param_count', 'flops_per_example', 'seconds_per_epoch')
METRICS = tuple(records.SELECTABLE) + COSTS
MODES = ('max', 'min')
RANK = 'pareto_rank'  # results.csv's column: 1 on the front, empty for a trial with no front.


class Objective(NamedTuple):
  metric: str
  mode: str  # max | min


def parse(text: str) -> tuple[Objective, ...]:
  """'val_accuracy:max, param_count:min' as Objectives; () for '' (one objective: sweep.metric).
  Raises records.ConfigError naming what is wrong and the valid choices."""
  if not isinstance(text, str):
    raise records.ConfigError(f'sweep.objectives={text!r} must be a string, e.g. '
                              "'val_accuracy:max, param_count:min'")
  if not text.strip():
    return ()
  objectives = []
  for part in text.split(','):
    metric, _, mode = (s.strip() for s in part.partition(':'))
    if metric not in METRICS:
      raise records.ConfigError(f'sweep.objectives={text!r}: unknown metric {metric!r}; valid: '
                                f'{", ".join(METRICS)}')
    if mode not in MODES:
      raise records.ConfigError(f'sweep.objectives={text!r}: {part.strip()!r} needs a mode: '
                                f'{metric}:max or {metric}:min')
    if metric in [o.metric for o in objectives]:
      raise records.ConfigError(f'sweep.objectives={text!r}: {metric} is named twice')
    objectives.append(Objective(metric, mode))
  if len(objectives) < 2:
    raise records.ConfigError(f'sweep.objectives={text!r}: name two or more, e.g. '
                              "'val_accuracy:max, param_count:min' (one objective is "
                              'sweep.metric and sweep.mode)')
  if objectives[0].metric not in records.SELECTABLE:
    raise records.ConfigError(f'sweep.objectives={text!r}: the first objective is the sweep '
                              f'metric; valid: {", ".join(records.SELECTABLE)}')
  return tuple(objectives)


def values(results: Sequence[records.TrialRecord],
           objectives: Sequence[Objective]) -> np.ndarray:
  """[trials, objectives] of the trials' values, turned so that higher is better; NaN where a
  trial has none (a diverged trial has none of any)."""
  out = np.array([[r.value(o.metric) if r.status != records.DIVERGED else np.nan
                   for o in objectives] for r in results], np.float64).reshape(
                       len(results), len(objectives))
  return out * np.array([1.0 if o.mode == 'max' else -1.0 for o in objectives])


def front_ranks(points: np.ndarray) -> np.ndarray:
  """The front of each row of `points` [n, k] (higher is better in every column): 1 for the
  non-dominated rows, 2 for those only front 1 dominates, ...; 0 for a row with a NaN."""
  points = np.asarray(points, np.float64)
  ranks = np.zeros(len(points), int)
  left = np.flatnonzero(np.isfinite(points).all(axis=1))
  front = 1
  while left.size:
    dominated = _dominated(points[left])
    ranks[left[~dominated]] = front
    left, front = left[dominated], front + 1
  return ranks


def _dominated(points: np.ndarray, block: int = 256) -> np.ndarray:
  """Whether some other row is >= each row everywhere and > somewhere; `block` rows at a time,
  so that memory grows as n, not n^2 (10,000 trials)."""
  out = np.zeros(len(points), bool)
  for start in range(0, len(points), block):
    rows = points[start:start + block, None, :]
    at_least = (points[None, :, :] >= rows).all(-1)
    better = (points[None, :, :] > rows).any(-1)
    out[start:start + block] = (at_least & better).any(1)
  return out


def ranks(results: Sequence[records.TrialRecord],
          objectives: Sequence[Objective]) -> dict[int, int]:
  """{trial id: its front} of the trials that have one."""
  fronts = front_ranks(values(results, objectives))
  return {r.trial: int(f) for r, f in zip(results, fronts) if f}


def has_front(results: Sequence[records.TrialRecord], objectives: Sequence[Objective]) -> bool:
  """Whether some trial has a front (a finite value of every objective), without ranking."""
  return bool(np.isfinite(values(results, objectives)).all(axis=1).any())


def ranked(results: Iterable[records.TrialRecord], objectives: Sequence[Objective],
           fronts: dict[int, int] | None = None) -> list[records.TrialRecord]:
  """Trials with a front, by front, and within one by the first objective (records.ranked:
  its tie-break, then trial id). `fronts`: their `ranks`, where the caller has them."""
  results = list(results)
  fronts = ranks(results, objectives) if fronts is None else fronts
  first = records.ranked([r for r in results if r.trial in fronts], *objectives[0])
  return sorted(first, key=lambda r: fronts[r.trial])  # Stable: keeps the first's order.


def front(results: Iterable[records.TrialRecord], objectives: Sequence[Objective],
          fronts: dict[int, int] | None = None) -> list[records.TrialRecord]:
  """The non-dominated trials, best first by the first objective."""
  results = list(results)
  fronts = ranks(results, objectives) if fronts is None else fronts
  return [r for r in ranked(results, objectives, fronts) if fronts[r.trial] == 1]
