"""Reading a workdir's files as bnlab writes them, or saying in one line what is damaged.

The report must not turn a damaged file into a quietly different sweep: a metric cell that is
not a number read as NaN ranks its trial as diverged, a row cut short loses its trial. Each
reader here raises `DamagedFile` instead, naming the file, the trial where it is known, and what
is wrong; the report's command line prints it as one line and exits 2. What bnlab itself writes
for "no value" (an empty cell, JSON null) stays NaN.
"""

import csv
import io
import json
import math
import re
from typing import Any, Iterable, Iterator

from bnlab import files
from bnlab import records


class DamagedFile(records.ConfigError):
  """A workdir file that is not as bnlab writes it; the message names the file and the trial."""

  def __init__(self, path: str, what: str, trial: Any = None):
    super().__init__(f'{path}: {"" if trial is None else f"trial {trial}: "}{what}')


def is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def read_text(path: str) -> str:
  try:
    return files.read_text(path)
  except UnicodeDecodeError:
    raise DamagedFile(path, 'is not UTF-8 text') from None


def read_json(path: str) -> Any:
  try:
    return json.loads(read_text(path))
  except json.JSONDecodeError as e:
    raise DamagedFile(path, f'is not valid JSON ({e.msg} at line {e.lineno} column '
                            f'{e.colno})') from None


def read_log(path: str) -> list[dict[str, Any]]:
  """The rows of a JSON-lines log (progress.jsonl) that carry an integer trial and epoch.

  Lenient by design: the monitor appends to it as the sweep runs, so a kill can cut its last
  line and a resumed run then appends after the cut; such a line is skipped.
  """
  if not files.exists(path):
    return []
  rows = []
  for line in read_text(path).splitlines():
    try:
      row = json.loads(line)
    except json.JSONDecodeError:
      continue
    if isinstance(row, dict) and is_int(row.get('trial')) and is_int(row.get('epoch')):
      rows.append(row)
  return rows


def read_rows(path: str) -> list[dict[str, Any]]:
  """The rows of a JSON-lines file written whole (history.jsonl): every line a JSON object with
  an integer trial and epoch."""
  if not files.exists(path):
    return []
  rows = []
  for number_, line in enumerate(read_text(path).splitlines(), 1):
    if not line.strip():
      continue
    try:
      row = json.loads(line)
    except json.JSONDecodeError as e:
      found = re.match(r'\{"trial": (\d+)', line)  # The trial, where the line still says it.
      raise DamagedFile(path, f'line {number_} is not JSON ({e.msg}; cut short?)',
                        found and found.group(1)) from None
    if not isinstance(row, dict) or not (is_int(row.get('trial')) and is_int(row.get('epoch'))):
      raise DamagedFile(path, f'line {number_} has no integer trial and epoch')
    rows.append(row)
  return rows


def csv_rows(path: str, required: Iterable[str] = ('trial',)) -> Iterator[dict[str, Any]]:
  """The rows of a CSV file bnlab wrote, `trial` as an int. A row with more or fewer cells than
  the header (a file cut short or edited), a missing `required` column or a trial that is not an
  integer is damage."""
  if not files.exists(path):
    return
  reader = csv.reader(io.StringIO(read_text(path), newline=''))
  try:
    header = next(reader, None)
    if not header:
      raise DamagedFile(path, 'is empty: no header row')
    missing = [c for c in required if c not in header]
    if missing:
      raise DamagedFile(path, f'has no column {missing[0]} (header: {",".join(header)})')
    for cells in reader:
      if not cells:
        continue
      row = dict(zip(header, cells))
      trial = _trial(path, row.get('trial'), reader.line_num)
      if len(cells) != len(header):
        hint = '; cut short?' if len(cells) < len(header) else ''
        raise DamagedFile(path, f'{len(cells)} cells for {len(header)} columns (line '
                                f'{reader.line_num}{hint})', trial)
      yield {**row, 'trial': trial}
  except csv.Error as e:
    raise DamagedFile(path, f'line {reader.line_num}: {e}') from None


def _trial(path, text, line):
  try:
    return int(text)
  except (TypeError, ValueError):
    raise DamagedFile(path, f'line {line}: trial {text!r} is not an integer') from None


def number(value: Any, path: str, trial: Any, name: str) -> float:
  """A metric from a CSV cell or a JSON value: empty or null is NaN (no value), a number is
  itself as a float; anything else is damage."""
  if value is None or value == '':
    return math.nan
  if not isinstance(value, bool) and isinstance(value, (int, float, str)):
    try:
      return float(value)
    except ValueError:
      pass
  raise DamagedFile(path, f'{name} {value!r} is not a number', trial)


def int_cell(row: dict[str, Any], column: str, path: str, default: Any) -> Any:
  """An integer CSV column (epochs, diverged_epoch, seeds); an empty or absent cell is
  `default`."""
  text = row.get(column)
  if not text:
    return default
  try:
    return int(text)
  except ValueError:
    raise DamagedFile(path, f'{column} {text!r} is not an integer', row['trial']) from None
