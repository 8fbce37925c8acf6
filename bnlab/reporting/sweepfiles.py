"""A sweep as its workdir files tell it: config.json, results.csv, history.jsonl, progress.jsonl.

A finished sweep has results.csv and history.jsonl. A running or killed one may have only
config.json and the live progress.jsonl (bnlab.monitor): its trials are then read from their
latest epoch, with status `partial` (stopped before its last epoch) or `trained` (all epochs
done, not yet in results.csv). Statuses the report does not know are kept as they are.
"""

import ast
import csv
import dataclasses
import io
import json
import math
import os

from bnlab import files
from bnlab import report
from bnlab import space

SCALARS = ('train_loss', 'val_loss', 'val_accuracy')  # Per-epoch metrics of a history row.
PROGRESS_FILE = 'progress.jsonl'  # Written live by bnlab.monitor.
TIMING_FILE = 'timing.json'
FINISHED = 'ok'  # The only status whose trials feed the importance evaluator.


@dataclasses.dataclass
class Sweep:
  workdir: str
  config: dict
  specs: dict  # {dotted field: space.Spec}
  results: list  # One dict per trial, as engine.member_result plus 'setting'.
  timing: dict  # timing.json, {} when absent.
  finished: bool  # True when results.csv is there.

  @property
  def metric(self):
    return self.config['sweep']['metric']

  @property
  def mode(self):
    return self.config['sweep']['mode']

  @property
  def name(self):
    return files.name(self.workdir)


def read_jsonl(path):
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


def parse_value(spec, value):
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


def _float(text):
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


def _history_rows(rows):
  return [{'epoch': r['epoch'], **{m: _float(r.get(m)) for m in SCALARS}} for r in rows]


def _from_csv(row, specs, history):
  result = {'trial': int(row['trial']), 'status': row.get('status') or 'unknown',
            'setting': {f: parse_value(s, row[f]) for f, s in specs.items() if f in row},
            'epochs': int(_float(row.get('epochs')) if row.get('epochs') else len(history)),
            'seconds': _float(row.get('seconds')), 'history': _history_rows(history)}
  result.update({m: _float(row.get(m)) for m in report.METRICS})
  return result


def _from_progress(trial, rows, specs, planned_epochs):
  """A trial known only from progress.jsonl: metrics of its latest epoch."""
  last = rows[-1]
  setting = {f: parse_value(s, last[f]) for f, s in specs.items() if f in last}
  diverged = any(r.get('diverged') for r in rows)
  epochs = setting.get('train.epochs', planned_epochs)
  status = 'diverged' if diverged else ('trained' if last['epoch'] >= epochs else 'partial')
  result = {'trial': trial, 'status': status, 'setting': setting, 'epochs': len(rows),
            'seconds': math.nan, 'history': _history_rows(rows)}
  result.update({m: math.nan if diverged else _float(last.get(m)) for m in report.METRICS})
  return result


def load(workdir):
  """The sweep in `workdir`; raises FileNotFoundError when it has no config.json."""
  config = json.loads(files.read_text(os.path.join(workdir, 'config.json')))
  specs = space.parse_space(config['sweep']['space'])
  csv_path = os.path.join(workdir, 'results.csv')
  csv_rows = []
  if files.exists(csv_path):
    csv_rows = list(csv.DictReader(io.StringIO(files.read_text(csv_path), newline='')))
  history = _histories(read_jsonl(os.path.join(workdir, 'history.jsonl')))
  progress = _histories(read_jsonl(os.path.join(workdir, PROGRESS_FILE)))
  results = [_from_csv(row, specs, history.get(int(row['trial'])) or
                       progress.get(int(row['trial']), [])) for row in csv_rows]
  done = {r['trial'] for r in results}
  results += [_from_progress(t, rows, specs, config['train']['epochs'])
              for t, rows in sorted(progress.items()) if t not in done]
  timing_path = os.path.join(workdir, TIMING_FILE)
  timing = {}
  if files.exists(timing_path):
    timing = json.loads(files.read_text(timing_path))
  return Sweep(workdir, config, specs, sorted(results, key=lambda r: r['trial']), timing,
               bool(csv_rows))


def counts(results):
  """{status: number of trials}, most common first."""
  tally = {}
  for r in results:
    tally[r['status']] = tally.get(r['status'], 0) + 1
  return dict(sorted(tally.items(), key=lambda kv: -kv[1]))
