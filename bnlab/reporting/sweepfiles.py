"""A sweep as its workdir files tell it: config.json, results.csv, history.jsonl, progress.jsonl.

A finished sweep has results.csv and history.jsonl. A running or killed one may have only
config.json and the live progress.jsonl (bnlab.monitor): its trials are then read from their
latest epoch, with status `partial` (stopped before its last epoch) or `trained` (all epochs
done, not yet in results.csv). Statuses the report does not know are kept as they are.

Every trial comes back as a `records.TrialRecord`, the record the sweep wrote it from, so that
writing a loaded sweep again (bnlab.reporting.results) gives the same results.csv and
history.jsonl, byte for byte.

Nothing damaged is read as if it were sound: a cell or value that is not what bnlab writes (a
metric that is not a number, a row cut short, a line of history.jsonl that is not JSON, a
config.json that does not parse) raises `readers.DamagedFile`, one line naming the file and the
trial, rather than turning into NaN and dropping or re-ranking the trial. An empty metric cell (null in
JSON) is no value, as bnlab writes a diverged trial's. progress.jsonl alone is read leniently:
it is a log that a kill can cut mid-line and a resume then appends to.
"""

import dataclasses
import math
import os
from typing import Any

from bnlab import files
from bnlab import pareto
from bnlab import records
from bnlab import space
from bnlab.records import TrialRecord
from bnlab.reporting import readers

RESULTS_FILE = 'results.csv'
HISTORY_FILE = 'history.jsonl'
SEEDS_FILE = 'seeds.csv'
SEED_STATS = ('_std', '_ci95')  # seeds.csv's spread columns, as suffixes of record.metrics keys.
LINEAGE, COPIED_FROM = records.LINEAGE, records.COPIED_FROM  # PBT's columns (see records).
# What the report reads of config.json.
CONFIG_FIELDS = ('sweep.space', 'sweep.metric', 'sweep.mode', 'sweep.strategy',
                 'sweep.num_trials', 'train.epochs', 'dataset.name')
DamagedFile = readers.DamagedFile
read_jsonl = readers.read_log  # progress.jsonl's reader, for the live monitor's tests.


@dataclasses.dataclass
class Sweep:
  """One workdir: its config (as JSON), swept fields, trials, timing and whether it finished."""
  workdir: str
  config: dict[str, Any]
  specs: dict[str, space.Spec]  # {dotted field: Spec}
  results: list[TrialRecord]  # One per trial, in trial order.
  timing: dict[str, Any]  # timing.json, {} when absent.
  finished: bool  # True when results.csv is there.

  @property
  def metric(self) -> str:
    return self.config['sweep']['metric']

  @property
  def mode(self) -> str:
    return self.config['sweep']['mode']

  @property
  def objectives(self) -> tuple[pareto.Objective, ...]:
    """sweep.objectives parsed; () for one objective (and for a config.json from before it)."""
    try:
      return pareto.parse(self.config['sweep'].get('objectives', ''))
    except records.ConfigError as e:
      raise DamagedFile(os.path.join(self.workdir, 'config.json'), str(e)) from None

  @property
  def name(self) -> str:
    return files.name(self.workdir)


def parse_value(spec: space.Spec, value: Any) -> Any:
  """A swept value read back from CSV text or JSON into the type its spec produces; ValueError
  where it is none of the spec's values."""
  if isinstance(value, list):
    value = tuple(value)
  if spec.is_numeric:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
      raise ValueError(f'{value!r} is not a number')
    try:
      return int(float(value)) if spec.kind == 'int_uniform' else float(value)
    except ValueError:
      raise ValueError(f'{value!r} is not a number') from None
  for arg in spec.args:
    if value == arg or str(value) == str(arg) or (value == '' and arg is None):
      return arg
  raise ValueError(f'{value!r} is not one of {spec.kind}{spec.args!r}')


def _value(spec, value, path, trial, field):
  try:
    return parse_value(spec, value)
  except ValueError as e:
    raise DamagedFile(path, f'{field} {e}', trial) from None


def _histories(rows):
  """{trial: [row per epoch]} keeping the last row written for each (trial, epoch)."""
  by_trial = {}
  for row in rows:
    by_trial.setdefault(int(row['trial']), {})[int(row['epoch'])] = row
  return {t: [epochs[e] for e in sorted(epochs)] for t, epochs in by_trial.items()}


def _progress_history(rows, path):
  """History rows of a trial known from progress.jsonl: the epoch and its scalars."""
  return [{'epoch': r['epoch'], **{m: readers.number(r.get(m), path, r['trial'], m)
                                   for m in records.SCALARS}} for r in rows]


def _scheduled(specs, csv_rows, history, paths):
  """Swept fields that change over some trial's epochs (PBT's schedules): history.jsonl writes
  every swept field on every row, and only these are per-epoch values rather than the setting."""
  out = set()
  for row in csv_rows:
    trial = row['trial']
    for epoch_row in history.get(trial, []):
      out |= {f for f, s in specs.items() if f in row and f in epoch_row
              and _value(s, epoch_row[f], paths[1], trial, f) != _value(s, row[f], paths[0],
                                                                        trial, f)}
  return out


def _history_rows(rows, specs, scheduled, path):
  """A history.jsonl trial's rows as the record held them: no trial id, no setting, None
  (a non-finite number) as NaN, the scheduled fields in their place."""
  return [{k: _value(specs[k], v, path, f'{row["trial"]}, epoch {row["epoch"]}', k)
           if k in specs else _row_value(k, v, path, row)
           for k, v in row.items() if k != 'trial' and (k not in specs or k in scheduled)}
          for row in rows]


def _row_value(key, value, path, row):
  """A history value that is no swept field: a number (an int stays one), bool or null (NaN; a
  `copied_from` of no copy stays None); anything else is damage."""
  if value is None:
    return None if key == COPIED_FROM else math.nan
  if isinstance(value, (bool, int, float)):
    return value
  return readers.number(value, path, f'{row["trial"]}, epoch {row["epoch"]}', key)


def _setting(row, specs, order, path):
  """The swept values of a CSV or progress row, in the order history.jsonl wrote them."""
  fields = [f for f in order if f in specs] + [f for f in specs if f not in order]
  return {f: _value(specs[f], row[f], path, row['trial'], f) for f in fields
          if row.get(f) not in (None, '')}  # Empty: inactive (a conditional spec).


def lineage_cell(lineage: list[list[int]]) -> str:
  """extras['lineage'] as its results.csv cell: `epoch:trial` pairs, space-separated."""
  return ' '.join(f'{epoch}:{source}' for epoch, source in lineage)


def _lineage(text, path, trial):
  try:
    return [[int(a), int(b)] for a, b in (pair.split(':') for pair in text.split())]
  except ValueError:
    raise DamagedFile(path, f'{LINEAGE} {text!r} is not epoch:trial pairs', trial) from None


def _from_csv(row, specs, history, scheduled, paths):
  path, history_path = paths
  trial = row['trial']
  rows = history.get(trial, [])
  record = TrialRecord(
      trial=trial, setting=_setting(row, specs, rows[0] if rows else (), path),
      status=row.get('status') or 'unknown',
      metrics={m: readers.number(row.get(m), path, trial, m) for m in records.METRICS},
      epochs=readers.int_cell(row, 'epochs', path, len(rows)),
      seconds=readers.number(row.get('seconds'), path, trial, 'seconds'),
      diverged_epoch=readers.int_cell(row, 'diverged_epoch', path, None),
      history=_history_rows(rows, specs, scheduled, history_path))
  # Written only where a trial had them (model.bn_eval batch or precise); an empty cell is none.
  # And (sweeps since sweep.select) the best epoch by the sweep metric, and the metric there;
  # (with sweep.objectives) what the trial cost.
  record.metrics.update({m: readers.number(row[m], path, trial, m) for m in row
                         if row.get(m) and (m in records.RUNNING + (records.BEST_EPOCH,)
                                            + pareto.COSTS or m.endswith('_best'))})
  if LINEAGE in row:
    record.extras[LINEAGE] = _lineage(row[LINEAGE], path, trial)
  return record


def _from_progress(trial, rows, specs, planned_epochs, path):
  """A trial known only from progress.jsonl: metrics of its latest epoch."""
  last = rows[-1]
  setting = _setting(last, specs, last, path)
  diverged = [r['epoch'] for r in rows if r.get('diverged')]
  epochs = setting.get('train.epochs', planned_epochs)
  status = (records.DIVERGED if diverged else
            records.TRAINED if last['epoch'] >= epochs else records.PARTIAL)
  return TrialRecord(
      trial=trial, setting=setting, status=status,
      metrics={m: math.nan if diverged else readers.number(last.get(m), path, trial, m)
               for m in records.METRICS},
      epochs=len(rows), diverged_epoch=diverged[0] if diverged else None,
      history=_progress_history(rows, path))


def per_seed_key(metric: str) -> str:
  """The extras key of a metric's per-seed values (strategies.base.aggregate writes it)."""
  return f'{metric}_per_seed'


def per_seed_columns(results: list[TrialRecord]) -> list[tuple[str, int]]:
  """(metric, seed index) of seeds.csv's per-seed columns `<metric>_seed<i>`: the metrics whose
  per-seed values some record keeps, as many seeds as the longest list."""
  out = []
  for m in records.METRICS:
    n = max((len(r.extras.get(per_seed_key(m), [])) for r in results), default=0)
    out += [(m, i) for i in range(n)]
  return out


def _per_seed(row, path):
  """{extras key: per-seed values} from a seeds.csv row's `<metric>_seed<i>` columns (none in a
  seeds.csv written before they were)."""
  out = {}
  for m in records.METRICS:
    columns = [f'{m}_seed{i}' for i in range(len(row)) if f'{m}_seed{i}' in row]
    if columns:
      out[per_seed_key(m)] = [readers.number(row[c], path, row['trial'], c) for c in columns]
  return out


def _add_seed_stats(results, workdir):
  """The spread over seeds from seeds.csv (sweep.seeds > 1) into the trials' records."""
  path = os.path.join(workdir, SEEDS_FILE)
  by_trial = {r.trial: r for r in results}
  for row in readers.csv_rows(path, ('trial', 'seeds')):
    record = by_trial.get(row['trial'])
    if record is not None:
      record.extras['seeds'] = readers.int_cell(row, 'seeds', path, 1)
      record.extras.update(_per_seed(row, path))
      record.metrics.update({m + s: readers.number(row.get(m + s), path, row['trial'], m + s)
                             for m in records.METRICS for s in SEED_STATS})


def _read_config(path):
  """config.json, with the fields the report reads; its space parsed."""
  config = readers.read_json(path)
  for field in CONFIG_FIELDS:
    node = config
    for part in field.split('.'):
      node = node.get(part) if isinstance(node, dict) else None
    if node is None:
      raise DamagedFile(path, f'has no {field}')
  try:
    return config, space.parse_space(config['sweep']['space'])
  except (space.SpecError, AttributeError) as e:
    raise DamagedFile(path, f'sweep.space: {e}') from None


def _results(workdir, specs, history):
  """results.csv's rows (trial ids each once, every trial of history.jsonl among them)."""
  path = os.path.join(workdir, RESULTS_FILE)
  rows, seen = [], set()
  for row in readers.csv_rows(path, ('trial',) + records.METRICS):
    if row['trial'] in seen:
      raise DamagedFile(path, 'has two rows', row['trial'])
    seen.add(row['trial'])
    rows.append(row)
  missing = sorted(set(history) - seen) if files.exists(path) else []
  if missing:
    raise DamagedFile(path, f'has no row, though {HISTORY_FILE} has its epochs (cut short?)',
                      missing[0])
  return rows


def load(workdir: str) -> Sweep:
  """The sweep in `workdir`; raises FileNotFoundError when it has no config.json, DamagedFile
  when a file is damaged."""
  config, specs = _read_config(os.path.join(workdir, 'config.json'))
  paths = (os.path.join(workdir, RESULTS_FILE), os.path.join(workdir, HISTORY_FILE))
  progress_path = os.path.join(workdir, records.PROGRESS_FILE)
  history = _histories(readers.read_rows(paths[1]))
  progress = _histories(readers.read_log(progress_path))
  csv_rows = _results(workdir, specs, history)
  scheduled = _scheduled(specs, csv_rows, history, paths)
  results = []
  for row in csv_rows:
    if row['trial'] in history:
      results.append(_from_csv(row, specs, history, scheduled, paths))
    else:  # Written before its history: its epochs from progress.jsonl.
      result = _from_csv(row, specs, {}, scheduled, paths)
      result.history = _progress_history(progress.get(row['trial'], []), progress_path)
      results.append(result)
  done = {r.trial for r in results}
  results += [_from_progress(t, rows, specs, config['train']['epochs'], progress_path)
              for t, rows in sorted(progress.items()) if t not in done]
  _add_seed_stats(results, workdir)
  timing_path = os.path.join(workdir, records.TIMING_FILE)
  timing = readers.read_json(timing_path) if files.exists(timing_path) else {}
  return Sweep(workdir, config, specs, sorted(results, key=lambda r: r.trial), timing,
               bool(csv_rows))


def counts(results: list[TrialRecord]) -> dict[str, int]:
  """{status: number of trials}, most common first."""
  tally = {}
  for r in results:
    tally[r.status] = tally.get(r.status, 0) + 1
  return dict(sorted(tally.items(), key=lambda kv: -kv[1]))
