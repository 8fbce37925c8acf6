"""A sweep as its workdir files tell it: config.json, results.csv, history.jsonl, progress.jsonl.

A finished sweep has results.csv and history.jsonl. A running or killed one may have only
config.json and the live progress.jsonl (bnlab.monitor): its trials are then read from their
latest epoch, with status `partial` (stopped before its last epoch) or `trained` (all epochs
done, not yet in results.csv). Statuses the report does not know are kept as they are.

Every trial comes back as a `records.TrialRecord`, the record the sweep wrote it from, so that
writing a loaded sweep again (bnlab.reporting.results) gives the same results.csv and
history.jsonl, byte for byte.
"""

import ast
import csv
import dataclasses
import io
import json
import math
import os
from typing import Any

from bnlab import files
from bnlab import records
from bnlab import space
from bnlab.records import TrialRecord

RESULTS_FILE = 'results.csv'
HISTORY_FILE = 'history.jsonl'
SEEDS_FILE = 'seeds.csv'
SEED_STATS = ('_std', '_ci95')  # seeds.csv's spread columns, as suffixes of record.metrics keys.


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
  def name(self) -> str:
    return files.name(self.workdir)


def read_jsonl(path: str) -> list[dict[str, Any]]:
  """The rows of a JSON-lines file; a line cut short by a kill is skipped."""
  if not files.exists(path):
    return []
  rows = []
  for line in files.read_text(path).splitlines():
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      continue
  return rows


def _read_csv(path: str) -> list[dict[str, str]]:
  if not files.exists(path):
    return []
  return list(csv.DictReader(io.StringIO(files.read_text(path), newline='')))


def parse_value(spec: space.Spec, value: Any) -> Any:
  """A swept value read back from CSV text or JSON into the type its spec produces."""
  if isinstance(value, list):
    value = tuple(value)
  if spec.is_numeric:
    return int(float(value)) if spec.kind == 'int_uniform' else float(value)
  for arg in spec.args:
    if value == arg or str(value) == str(arg):
      return arg
  try:
    return ast.literal_eval(value)
  except (SyntaxError, ValueError):
    return value


def _float(text: Any) -> float:
  try:
    return float(text)
  except (TypeError, ValueError):
    return math.nan


def _histories(rows):
  """{trial: [row per epoch]} keeping the last row written for each (trial, epoch)."""
  by_trial = {}
  for row in rows:
    by_trial.setdefault(int(row['trial']), {})[int(row['epoch'])] = row
  return {t: [epochs[e] for e in sorted(epochs)] for t, epochs in by_trial.items()}


def _progress_history(rows):
  """History rows of a trial known from progress.jsonl: the epoch and its scalars."""
  return [{'epoch': r['epoch'], **{m: _float(r.get(m)) for m in records.SCALARS}} for r in rows]


def _scheduled(specs, csv_rows, history):
  """Swept fields that change over some trial's epochs (PBT's schedules): history.jsonl writes
  every swept field on every row, and only these are per-epoch values rather than the setting."""
  out = set()
  for row in csv_rows:
    for epoch_row in history.get(int(row['trial']), []):
      out |= {f for f, s in specs.items() if f in row and f in epoch_row
              and parse_value(s, epoch_row[f]) != parse_value(s, row[f])}
  return out


def _history_rows(rows, specs, scheduled):
  """A history.jsonl trial's rows as the record held them: no trial id, no setting, None
  (a non-finite number) as NaN, the scheduled fields in their place."""
  return [{k: parse_value(specs[k], v) if k in specs else (math.nan if v is None else v)
           for k, v in row.items() if k != 'trial' and (k not in specs or k in scheduled)}
          for row in rows]


def _setting(row, specs, order):
  """The swept values of a CSV or progress row, in the order history.jsonl wrote them."""
  fields = [f for f in order if f in specs] + [f for f in specs if f not in order]
  return {f: parse_value(specs[f], row[f]) for f in fields if f in row}


def _from_csv(row, specs, history, scheduled):
  trial = int(row['trial'])
  rows = history.get(trial, [])
  diverged_epoch = row.get('diverged_epoch')
  return TrialRecord(
      trial=trial, setting=_setting(row, specs, rows[0] if rows else ()),
      status=row.get('status') or 'unknown',
      metrics={m: _float(row.get(m)) for m in records.METRICS},
      epochs=int(_float(row['epochs'])) if row.get('epochs') else len(rows),
      seconds=_float(row.get('seconds')),
      diverged_epoch=int(diverged_epoch) if diverged_epoch else None,
      history=_history_rows(rows, specs, scheduled))


def _from_progress(trial, rows, specs, planned_epochs):
  """A trial known only from progress.jsonl: metrics of its latest epoch."""
  last = rows[-1]
  setting = _setting(last, specs, last)
  diverged = [r['epoch'] for r in rows if r.get('diverged')]
  epochs = setting.get('train.epochs', planned_epochs)
  status = (records.DIVERGED if diverged else
            records.TRAINED if last['epoch'] >= epochs else records.PARTIAL)
  return TrialRecord(
      trial=trial, setting=setting, status=status,
      metrics={m: math.nan if diverged else _float(last.get(m)) for m in records.METRICS},
      epochs=len(rows), diverged_epoch=diverged[0] if diverged else None,
      history=_progress_history(rows))


def _add_seed_stats(results, workdir):
  """The spread over seeds from seeds.csv (sweep.seeds > 1) into the trials' records."""
  by_trial = {r.trial: r for r in results}
  for row in _read_csv(os.path.join(workdir, SEEDS_FILE)):
    record = by_trial.get(int(row['trial']))
    if record is not None:
      record.extras['seeds'] = int(row['seeds'])
      record.metrics.update({m + s: _float(row[m + s]) for m in records.METRICS
                             for s in SEED_STATS})


def load(workdir: str) -> Sweep:
  """The sweep in `workdir`; raises FileNotFoundError when it has no config.json."""
  config = json.loads(files.read_text(os.path.join(workdir, 'config.json')))
  specs = space.parse_space(config['sweep']['space'])
  csv_rows = _read_csv(os.path.join(workdir, RESULTS_FILE))
  history = _histories(read_jsonl(os.path.join(workdir, HISTORY_FILE)))
  progress = _histories(read_jsonl(os.path.join(workdir, records.PROGRESS_FILE)))
  scheduled = _scheduled(specs, csv_rows, history)
  results = []
  for row in csv_rows:
    trial = int(row['trial'])
    if trial in history:
      results.append(_from_csv(row, specs, history, scheduled))
    else:  # Written before its history: its epochs from progress.jsonl.
      result = _from_csv(row, specs, {}, scheduled)
      result.history = _progress_history(progress.get(trial, []))
      results.append(result)
  done = {r.trial for r in results}
  results += [_from_progress(t, rows, specs, config['train']['epochs'])
              for t, rows in sorted(progress.items()) if t not in done]
  _add_seed_stats(results, workdir)
  timing_path = os.path.join(workdir, records.TIMING_FILE)
  timing = json.loads(files.read_text(timing_path)) if files.exists(timing_path) else {}
  return Sweep(workdir, config, specs, sorted(results, key=lambda r: r.trial), timing,
               bool(csv_rows))


def counts(results: list[TrialRecord]) -> dict[str, int]:
  """{status: number of trials}, most common first."""
  tally = {}
  for r in results:
    tally[r.status] = tally.get(r.status, 0) + 1
  return dict(sorted(tally.items(), key=lambda kv: -kv[1]))
