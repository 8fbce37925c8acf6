"""Checksums of what a workdir holds, so that nothing damaged is used as if it were sound.

Three kinds of file are verified before a resume uses them (bnlab.checkpoint):

- a checkpoint folder, against a manifest of the SHA-256 of each of its files written after it;
- a journal entry, which carries the SHA-256 of its own records;
- the results files of a finished sweep, against the SHA-256 that `complete.json` recorded.

Each check returns a reason in words ('' when sound), for a one-line warning or error that names
the file.
"""

import hashlib
import json
import os
from typing import Any, NamedTuple

from etils import epath

from bnlab import files
from bnlab import records

# The files of a finished sweep that complete.json vouches for: its config (bnlab.sweep) and
# results (bnlab.reporting.results; report.html and plots/ are drawn from them on any rebuild).
RESULTS_FILES = ('config.json', 'results.csv', 'history.jsonl', 'seeds.csv', 'best.json',
                 'best_config.py')
DAMAGED_SUFFIX = '.damaged'
COMPLETE_FILE = os.path.join('checkpoints', 'complete.json')  # In a workdir.


def sha256(data: bytes | str) -> str:
  return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _walk(folder: epath.Path, prefix: str = '') -> dict[str, epath.Path]:
  # By hand: epath refuses a recursive glob (it would be one request per folder on GCS).
  out = {}
  for path in folder.iterdir():
    name = prefix + path.name
    out.update(_walk(path, name + '/') if path.is_dir() else {name: path})
  return out


def digests(folder: str) -> dict[str, str]:
  """{path relative to `folder`: SHA-256} of every file under it."""
  return {name: sha256(path.read_bytes())
          for name, path in sorted(_walk(epath.Path(folder)).items())}


def check_folder(folder: str, manifest: str) -> str:
  """Why `folder` does not match the manifest file `manifest`, or '' when it does."""
  if not files.exists(manifest):
    return 'it has no manifest of checksums'
  try:
    expected = json.loads(files.read_text(manifest))
  except (ValueError, UnicodeDecodeError):
    return f'its manifest {manifest} is unreadable'
  actual = digests(folder)
  if not isinstance(expected, dict):
    return f'its manifest {manifest} is unreadable'
  changed = sorted(n for n in expected.keys() | actual.keys() if expected.get(n) != actual.get(n))
  if changed:
    return f'{len(changed)} file(s) differ from its manifest, e.g. {changed[0]}'
  return ''


def _records_digest(payload: list[dict[str, Any]]) -> str:
  # Python's json writes NaN and every float exactly, so a parsed entry dumps back to the same.
  return sha256(json.dumps(payload, sort_keys=True))


def records_text(done: list[records.TrialRecord]) -> str:
  """A journal entry: the records as JSON with the SHA-256 of their JSON."""
  payload = [r.to_json() for r in done]
  return json.dumps({'sha256': _records_digest(payload), 'records': payload})


def read_records(text: str) -> tuple[list[records.TrialRecord], str]:
  """(records, '') from a sound journal entry, ([], why) from any other text."""
  try:
    entry = json.loads(text)
  except ValueError:
    return [], 'not valid JSON'
  if not isinstance(entry, dict) or not {'sha256', 'records'} <= entry.keys():
    return [], 'no checksum (not written by this version of bnlab)'
  if not isinstance(entry['records'], list) or entry['sha256'] != _records_digest(
      entry['records']):
    return [], 'its records do not match their checksum'
  try:
    return [records.TrialRecord.from_json(r) for r in entry['records']], ''
  except (TypeError, KeyError, AttributeError) as e:
    return [], f'a record is malformed ({e})'


def results_digests(workdir: str) -> dict[str, str]:
  """{name: SHA-256} of the RESULTS_FILES present in `workdir`."""
  out = {}
  for name in RESULTS_FILES:
    path = os.path.join(workdir, name)
    if files.exists(path):
      out[name] = sha256(epath.Path(path).read_bytes())
  return out


class Completion(NamedTuple):
  """What complete.json says of a workdir: `finished` (and every results file verified), or
  `damaged`: the results files that differ from what it recorded (missing ones included), with
  `problem` the line that says so. Neither: the sweep has not finished."""
  finished: bool
  damaged: tuple[str, ...] = ()
  problem: str = ''


def completion(workdir: str) -> Completion:
  """Reads `workdir`'s complete.json and checks its results files against it."""
  path = os.path.join(workdir, COMPLETE_FILE)
  if not files.exists(path):
    return Completion(False)
  try:
    expected = json.loads(files.read_text(path))['files']
    assert isinstance(expected, dict) and expected
  except (ValueError, UnicodeDecodeError, KeyError, TypeError, AssertionError):
    return Completion(False, (), f'{path} is damaged or holds no checksums, so the results '
                      'cannot be verified')
  actual = results_digests(workdir)
  damaged = tuple(n for n in RESULTS_FILES if n in expected or n in actual
                  if expected.get(n) != actual.get(n))
  if not damaged:
    return Completion(True)
  return Completion(False, damaged, f'{", ".join(damaged)} in {workdir} differ from what the '
                    'finished sweep wrote (damaged, edited or missing)')


def set_aside(workdir: str, names: tuple[str, ...]) -> list[str]:
  """Renames each of `names` present in `workdir` to <name>.damaged (replacing an older one), so
  that rebuilding the results loses nothing a user may have edited; returns the new names."""
  moved = []
  for name in names:
    path = epath.Path(workdir, name)
    if path.exists():
      path.replace(path.with_name(name + DAMAGED_SUFFIX))
      moved.append(name + DAMAGED_SUFFIX)
  return moved
