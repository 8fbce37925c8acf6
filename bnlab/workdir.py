"""The workdir as bnlab owns it: a marker of ownership, a lock, and the layout it was trained on.

- `MARKER` is the first file bnlab writes into a workdir it creates (or finds empty). `--overwrite`
  deletes only a folder that holds it: a folder of the user's, or of an older bnlab, is never
  deleted, whatever else it holds.
- `LOCK` holds the process id and host of the launch that uses the workdir. A second launch is
  refused in one line naming that process; a lock left by a process that is gone is taken over.
- `LAYOUT` records what changes the arithmetic besides the config (platform, device kind and
  count, process count): a resume under another layout is refused, naming both, since it would
  mix results computed two ways.
- `DATASET` records the sha256 of a `dataset.name=npz:PATH` file: a resume after the file changed
  is refused, since the config (the path) cannot tell two datasets apart.

Only process 0 of a multi-process run calls these; on gs:// the lock is skipped (an object store
has no atomic create here) and the marker and layout work as on a local disk.
"""

import contextlib
import json
import os
import socket
from typing import Any, Iterator

from absl import logging
from etils import epath
import jax

from bnlab import files
from bnlab import npz
from bnlab import records

MARKER = '.bnlab-workdir'
LOCK = '.bnlab-lock'
LAYOUT = 'layout.json'
DATASET = 'dataset.json'


def owned(workdir: str) -> bool:
  """Whether bnlab wrote `workdir` (it holds the marker)."""
  return files.exists(os.path.join(workdir, MARKER))


def clear(workdir: str) -> None:
  """Deletes `workdir` for --overwrite, only if bnlab owns it; a missing one is fine."""
  if not files.exists(workdir) or not _entries(workdir):  # New (only this launch's lock): nothing
    return                                                 # to delete, nobody's data to keep.
  if not owned(workdir):
    raise records.ConfigError(
        f'--overwrite: {workdir} was not created by bnlab (it has no {MARKER}), so bnlab will '
        'not delete it; remove it yourself or choose another --workdir')
  for child in _entries(workdir):  # All but the lock this launch holds.
    if child.is_dir():
      child.rmtree()
    else:
      child.unlink()


def claim(workdir: str) -> None:
  """Creates `workdir` with the marker; a folder that exists gets the marker only when empty."""
  fresh = not files.exists(workdir) or not _entries(workdir)
  files.makedirs(workdir)
  if fresh:
    files.write_text(os.path.join(workdir, MARKER), json.dumps({'written_by': 'bnlab'}) + '\n')


def _entries(workdir):
  """What a workdir holds, its lock aside."""
  return [p for p in epath.Path(workdir).iterdir() if p.name != LOCK]


def layout() -> dict[str, Any]:
  """What, besides the config, decides a sweep's arithmetic on this machine."""
  return {'platform': jax.default_backend(), 'device_kind': jax.devices()[0].device_kind,
          'device_count': jax.device_count(), 'process_count': jax.process_count()}


def check_layout(workdir: str) -> None:
  """Refuses to resume a workdir trained on another layout; records the layout of a new one."""
  path, now = os.path.join(workdir, LAYOUT), layout()
  if not files.exists(path):
    files.write_text(path, json.dumps(now, indent=2) + '\n')
    return
  try:
    before = json.loads(files.read_text(path))
  except ValueError:
    raise records.ConfigError(f'workdir {workdir}: {LAYOUT} is damaged; it cannot say what the '
                              'sweep was trained on: use another --workdir') from None
  if before != now:
    raise records.ConfigError(
        f'workdir {workdir} was trained on {_describe(before)}, this run has {_describe(now)}: '
        'resuming would mix results computed two ways; run it as before (e.g. '
        'JAX_NUM_CPU_DEVICES) or choose another --workdir')


def check_dataset(workdir: str, name: str) -> None:
  """Refuses to resume a sweep of `npz:PATH` whose file changed since; records a new one's
  digest. Other datasets are named by their TFDS builder and version, in the config."""
  if not name.startswith(npz.PREFIX):
    return
  path, now = os.path.join(workdir, DATASET), {'name': name, 'sha256': npz.digest(name)}
  if not files.exists(path):
    files.write_text(path, json.dumps(now, indent=2) + '\n')
    return
  try:
    before = json.loads(files.read_text(path))['sha256']
  except (ValueError, KeyError, TypeError):
    raise records.ConfigError(f'workdir {workdir}: {DATASET} is damaged; it cannot say which '
                              'arrays the sweep was trained on: use another --workdir') from None
  if before != now['sha256']:
    raise records.ConfigError(
        f'dataset.name={name!r}: the file changed since workdir {workdir} was trained on it '
        f'(sha256 {before[:12]}..., now {now["sha256"][:12]}...); resuming would mix two '
        'datasets: restore the file or choose another --workdir')


def _describe(lay):
  return (f'{lay.get("device_count")} {lay.get("platform")} device(s) ({lay.get("device_kind")}) '
          f'in {lay.get("process_count")} process(es)')


def _alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # Someone else's process: alive.
  return True


@contextlib.contextmanager
def locked(workdir: str) -> Iterator[None]:
  """Holds the workdir's lock for the block (a local workdir; gs:// is not locked)."""
  if not files.is_local(workdir):
    yield
    return
  files.makedirs(workdir)
  path = os.path.join(workdir, LOCK)
  mine = f'{os.getpid()} {socket.gethostname()}'
  _take(path, mine, workdir)
  try:
    yield
  finally:
    with contextlib.suppress(OSError):
      with open(path) as f:
        if f.read().strip() == mine:
          os.remove(path)


def _take(path, mine, workdir):
  """Creates the lock file atomically, or takes over one whose process is gone."""
  try:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
  except FileExistsError:
    try:
      with open(path) as f:
        pid, host = f.read().split()
      pid = int(pid)
    except (OSError, ValueError):
      pid, host = -1, socket.gethostname()  # Unreadable: left by a launch killed mid-write.
    if host != socket.gethostname() or (pid > 0 and _alive(pid)):
      raise records.ConfigError(
          f'workdir {workdir} is in use by process {pid} on {host} (its {LOCK}); wait for it '
          'to end or stop it, or choose another --workdir') from None
    logging.warning('workdir %s: taking over the lock of process %d, which is gone', workdir, pid)
    files.write_text(path, mine)
    return
  with os.fdopen(fd, 'w') as f:
    f.write(mine)
