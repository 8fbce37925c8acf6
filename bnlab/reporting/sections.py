"""The report's tables beyond the leaderboard: the config, and what each strategy is for.

Each function takes the sweep's records (and config, as config.json holds it) and returns
`Section`s, or none where the section does not apply: the spread over seeds only with
sweep.seeds > 1, the running-vs-precise BN gap only where trials have running-average metrics,
the rungs of halving and Hyperband, the rounds of TPE, GP and coarse-to-fine. PBT's part is a
figure (figures.schedules), drawn by pages.make_page.
"""

import json
import math
import statistics
from typing import Any, NamedTuple

import ml_collections
import numpy as np

from bnlab import pareto
from bnlab import records
from bnlab.records import TrialRecord
from bnlab.reporting import figures
from bnlab.reporting import sweepfiles

TOP = 10  # Rows of the seeds' and the BN gap's tables.
PAIRED = 5  # The best setting is compared with the next PAIRED - 1.


class Section(NamedTuple):
  """One titled table of the report, with a sentence that says how to read it."""
  title: str
  note: str
  header: list[str]
  rows: list[list[str]]


def flatten(tree: dict[str, Any], prefix: str = '') -> dict[str, Any]:
  """A nested dict's leaves under dotted names: {'model': {'norm': 'batch'}} -> {'model.norm':
  'batch'}; an empty dict is a leaf (model.kwargs with no keys)."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      out.update(flatten(value, f'{prefix}{key}.'))
    else:
      out[prefix + key] = value
  return out


def _text(value):
  return value if isinstance(value, str) else json.dumps(value)


def config_sections(config: dict[str, Any]) -> list[Section]:
  """The swept space (field: spec) and the fixed values apart. The fixed ones leave out the swept
  fields (their base value is not what any trial trained with), sweep.space itself and the
  sections of the strategies this sweep did not use."""
  sweep = config.get('sweep', {})
  space = {f: s for f, s in flatten(sweep.get('space', {})).items() if s}
  unused = tuple(f'sweep.{name}.' for name, section in sweep.items()  # Others' knobs.
                 if isinstance(section, dict) and name != sweep.get('strategy'))
  fixed = {f: v for f, v in flatten(config).items() if f not in space and not f.startswith(unused)}
  how = 'crossed in a grid' if sweep.get('strategy') == 'grid' else 'sampled per trial'
  return [Section('Swept space', f'{records.count(len(space), "field")} {how}.',
                  ['field', 'spec'], [[f, _text(s)] for f, s in space.items()]),
          Section('Fixed values', 'Every other config value, the same in every trial.',
                  ['field', 'value'], [[f, _text(v)] for f, v in fixed.items()])]


def _interval(values: list[float]) -> float:
  """Half-width of the Student-t 95% interval of the mean of `values` (NaN with fewer than 2)."""
  n = len(values)
  if n < 2:
    return math.nan
  from scipy import stats  # pylint: disable=import-outside-toplevel  # Only seeds > 1 pay 1 s.
  return float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n))


def paired_difference(a: list[float], b: list[float]) -> tuple[float, float, int]:
  """(mean, 95% half-width, n) of the per-seed differences a - b over the seeds where both are
  finite. Seed i of every setting shares its init and data order: the pairing removes what the
  seed does to both, which two independent intervals would count twice."""
  d = [x - y for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
  return (float(np.mean(d)) if d else math.nan), _interval(d), len(d)


def _label(record, fields):
  return figures.trial_label(record, fields)


def seed_sections(results: list[TrialRecord], fields: list[str], metric: str,
                  mode: str) -> list[Section]:
  """With sweep.seeds > 1: mean +- 95% interval per setting, and the best setting's paired
  differences to the next ones."""
  if not any(r.extras.get('seeds', 1) > 1 for r in results):
    return []
  ranking = records.ranked(results, metric, mode)
  rows = [[str(i + 1), _label(r, fields), str(r.extras.get('seeds', 1)),
           records.fmt(r.value(metric)), records.fmt(r.value(f'{metric}_ci95')),
           records.fmt(r.value(f'{metric}_std'))] for i, r in enumerate(ranking[:TOP])]
  spread = Section(f'Spread over seeds (top {min(TOP, len(ranking))})',
                   f'{metric} is the mean over each setting\'s seeds; +- is the half-width of '
                   'its Student-t 95% interval.',
                   ['rank', 'setting', 'seeds', f'{metric} mean', '+- 95%', 'std'], rows)
  return [spread] + _paired_section(ranking[:PAIRED], fields, metric)


def _paired_section(top, fields, metric):
  key = sweepfiles.per_seed_key(metric)
  if len(top) < 2 or key not in top[0].extras:
    return []
  rows = []
  for other in top[1:]:
    mean, half, n = paired_difference(top[0].extras[key], other.extras.get(key, []))
    excludes = math.isfinite(half) and abs(mean) > half
    rows.append([_label(other, fields), records.fmt(mean), records.fmt(half), str(n),
                 'yes' if excludes else 'no'])
  return [Section(f'Paired differences to the best setting, {_label(top[0], fields)}',
                  'Best minus each next setting, seed by seed (seed i of every setting shares '
                  'its init and data order); +- is the Student-t 95% half-width of the mean '
                  'difference. "no": the ranking between the two is within the seeds\' noise.',
                  ['setting', f'{metric} difference', '+- 95%', 'seeds', 'interval excludes 0'],
                  rows)]


def running_sections(results: list[TrialRecord], config: dict[str, Any], fields: list[str],
                     metric: str, mode: str) -> list[Section]:
  """Where trials were scored with precise (or batch) BN statistics and also with the running
  averages: both accuracies and their gap for the top trials, and the median gap."""
  has = [r for r in records.ranked(results, metric, mode)
         if math.isfinite(r.value('val_accuracy_running'))]
  if not has:
    return []
  gap = lambda r: r.value('val_accuracy') - r.value('val_accuracy_running')
  bn_eval = config.get('model', {}).get('bn_eval', '?')
  rows = [[str(r.trial), _label(r, fields), records.fmt(r.value('val_accuracy')),
           records.fmt(r.value('val_accuracy_running')), records.fmt(gap(r))] for r in has[:TOP]]
  return [Section(f'BN statistics: {bn_eval} vs running averages',
                  f'The same weights scored with model.bn_eval={bn_eval} and with the running '
                  f'averages; median gap over {records.count(len(has), "trial")}: '
                  f'{statistics.median(gap(r) for r in has):+.4f}.',
                  ['trial', 'setting', f'val_accuracy ({bn_eval})', 'val_accuracy_running',
                   'gap'], rows)]


def rung_section(results: list[TrialRecord]) -> Section:
  """Who stopped where: trials by the epochs they reached, by status (halving, Hyperband)."""
  statuses = list(sweepfiles.counts(results))
  reached = sorted({r.epochs for r in results})
  rows = [[str(e), str(sum(r.epochs >= e for r in results))]
          + [str(sum(r.epochs == e and r.status == s for r in results)) for s in statuses]
          for e in reached]
  return Section('Rungs: who stopped where',
                 'Trials by the epochs they trained: how many reached each, and how many '
                 'stopped there, by status.',
                 ['epochs', 'reached'] + [f'stopped {s}' for s in statuses], rows)


def hyperband_section(results: list[TrialRecord], config: dict[str, Any]) -> Section:
  """Each Hyperband bracket's rungs: trials planned and trials that reached each."""
  # pylint: disable=import-outside-toplevel  # The strategies import JAX: only hyperband pays.
  from bnlab.strategies import hyperband
  by_trial = {r.trial: r for r in results}
  rows, first = [], 0
  for bracket in hyperband.schedule(ml_collections.ConfigDict(config)):
    trials = [by_trial[t] for t in range(first, first + bracket.rungs[0].configs)
              if t in by_trial]
    first += bracket.rungs[0].configs
    rows += [[str(bracket.s), f'{trials[0].trial}-{trials[-1].trial}' if trials else '',
              str(rung.epochs), str(rung.configs), str(sum(r.epochs >= rung.epochs
                                                           for r in trials))]
             for rung in bracket.rungs]
  return Section('Hyperband brackets', 'Each bracket halves its own trials, rung by rung: '
                 'planned trials per rung and those that reached it.',
                 ['bracket s', 'trials', 'rung epochs', 'planned', 'reached'], rows)


def round_sizes(config: dict[str, Any]) -> list[int]:
  """Trials per round of a strategy that asks in rounds: TPE's and GP's batches, coarse-to-fine's
  rounds (the first ones get the remainder, as strategies/coarse_to_fine.py splits them)."""
  sweep = config['sweep']
  n, name = sweep['num_trials'], sweep['strategy']
  if name == 'coarse_to_fine':
    rounds = sweep['coarse_to_fine']['rounds']
    return [n // rounds + (1 if r < n % rounds else 0) for r in range(rounds)]
  size = sweep.get(name, {}).get('batch_size', 8)  # 8: the default before it was a knob.
  return [min(size, n - start) for start in range(0, n, size)]


def round_section(results: list[TrialRecord], sizes: list[int], metric: str, mode: str,
                  how: str = 'asked together') -> Section:
  """Best of each round and best so far (a search that learns should climb round by round)."""
  rows, first = [], 0
  cell = lambda ranked: f'#{ranked[0].trial} {records.fmt(ranked[0].value(metric))}' if (
      ranked) else ''
  for i, size in enumerate(sizes):
    last = first + size
    rows.append([str(i), f'{first}-{last - 1}',
                 cell(records.ranked([r for r in results if first <= r.trial < last], metric,
                                     mode)),
                 cell(records.ranked([r for r in results if r.trial < last], metric, mode))])
    first = last
  return Section('Rounds: best so far', f'The trials of each round ({how}), its best '
                 f'{metric} and the best so far.',
                 ['round', 'trials', 'round best', 'best so far'], rows)


def pareto_section(results: list[TrialRecord], objectives: tuple[pareto.Objective, ...],
                   fields: list[str]) -> Section:
  """The front trials with every objective, best first by the first objective."""
  front = pareto.front(results, objectives)
  names = [o.metric for o in objectives]
  rows = [[str(r.trial)] + [records.fmt(r.value(m)) for m in names] + [_label(r, fields)]
          for r in front]
  note = (f'{records.count(len(front), "trial")} of {len(results)} on the front: no other trial '
          'is at least as good on every objective and better on one. Each has a config that '
          'trains it alone in pareto/; pareto.csv holds their results.csv rows.')
  return Section('Pareto front', note, ['trial'] + names + ['setting'], rows)


def strategy_sections(sweep: sweepfiles.Sweep) -> list[Section]:
  """What the sweep's strategy (and seeds, and BN evaluation) is for, as tables."""
  fields, metric, mode = list(sweep.specs), sweep.metric, sweep.mode
  name = sweep.config['sweep']['strategy']
  out = seed_sections(sweep.results, fields, metric, mode)
  out += running_sections(sweep.results, sweep.config, fields, metric, mode)
  if name in ('halving', 'hyperband'):
    out.append(rung_section(sweep.results))
  if name == 'hyperband':
    out.append(hyperband_section(sweep.results, sweep.config))
  if sweep.objectives and pareto.has_front(sweep.results, sweep.objectives):  # Not while it runs.
    out.append(pareto_section(sweep.results, sweep.objectives, fields))
  if name in ('tpe', 'gp', 'coarse_to_fine'):
    how = ('asked one by one as slots freed, in that order'
           if sweep.config['sweep'].get('ask') == 'slot' else 'asked together')
    out.append(round_section(sweep.results, round_sizes(sweep.config), metric, mode, how))
  return out
