"""Workdir file operations that work the same on a local folder and on `gs://BUCKET/...`.

Every file bnlab reads or writes in a workdir goes through `etils.epath`, the path library TFDS
and Orbax use: a local path goes to Python's own file functions, a `gs://` path to
`tf.io.gfile` (TensorFlow's GCS file system). Paths stay strings: `os.path.join` is right for
URIs on POSIX, but `os.path.abspath` and `normpath` are not (`gs://b/x` would become
`/cwd/gs:/b/x`), hence `absolute` and `name` here.
"""

import importlib.util
import os
from typing import IO
import urllib.parse

from etils import epath

REMOTE_SCHEMES = ('gs',)  # Through tf.io.gfile; TensorFlow 2.21 itself has no s3:// or az://.


def default_workdir(config_file: str) -> str:
  """launch.py's workdir for a config file without --workdir: runs/<config file stem>. A sweep's
  best_config.py trains beside its sweep, in <sweep>_best (runs/sweep/best_config.py ->
  runs/sweep_best), and a Pareto front's configs in <sweep>_pareto (runs/sweep/pareto/
  trial_7.py -> runs/sweep_pareto/trial_7), so two sweeps' winners never share a workdir."""
  folder, name = os.path.split(os.path.normpath(config_file))
  stem = os.path.splitext(name)[0]
  if stem == 'best_config' and os.path.basename(folder):
    return f'{folder}_best'
  sweep, sub = os.path.split(folder)
  if sub == 'pareto' and os.path.basename(sweep):
    return os.path.join(f'{sweep}_pareto', stem)
  return os.path.join('runs', stem)


def is_local(path: epath.PathLike) -> bool:
  """Whether `path` is a plain local path, not a `scheme://...` URI."""
  return '://' not in os.fspath(path)


def supported(path: epath.PathLike) -> bool:
  """Whether a workdir can live at `path`: a local folder or `gs://BUCKET[/...]`."""
  url = urllib.parse.urlparse(os.fspath(path))
  return is_local(path) or (url.scheme in REMOTE_SCHEMES and bool(url.netloc))


# What a remote workdir needs beyond requirements.txt, {module: pip package}: tf.io.gfile for
# the files, and Orbax (0.12) asks a gs:// bucket about its namespace through google-cloud-storage
# as soon as it opens a checkpoint folder there.
REMOTE_NEEDS = {'gs': {'tensorflow': 'tensorflow-cpu',
                       'google.cloud.storage': 'google-cloud-storage'}}


def _importable(module):
  try:
    return importlib.util.find_spec(module) is not None
  except ModuleNotFoundError:  # A missing parent package.
    return False


def missing_packages(path: epath.PathLike) -> list[str]:
  """The pip packages a workdir at `path` needs that are not installed; [] for a local one."""
  if is_local(path):
    return []
  needs = REMOTE_NEEDS[urllib.parse.urlparse(os.fspath(path)).scheme]
  return [package for module, package in needs.items() if not _importable(module)]


def absolute(path: epath.PathLike) -> str:
  """A local path made absolute (Orbax's tensorstore wants that); a URI as it is."""
  return os.path.abspath(path) if is_local(path) else os.fspath(path)


def name(path: epath.PathLike) -> str:
  """The last part of a path or URI, ignoring a trailing slash: `runs/x/` and `gs://b/x` -> x."""
  return epath.Path(absolute(path)).name  # Absolute first: `.` gets the folder's own name.


def exists(path: epath.PathLike) -> bool:
  return epath.Path(path).exists()


def isdir(path: epath.PathLike) -> bool:
  return epath.Path(path).is_dir()


def makedirs(path: epath.PathLike) -> None:
  epath.Path(path).mkdir(parents=True, exist_ok=True)


def rmtree(path: epath.PathLike) -> None:
  epath.Path(path).rmtree()


def read_text(path: epath.PathLike) -> str:
  return epath.Path(path).read_text()


def _write_atomically(path, data, mode):
  """Writes to `path.tmp`, then renames it over `path`: a kill leaves the old file or the new.

  On GCS an object only appears once its upload completes, and the rename (a copy, then a
  delete) happens after that; so a reader there too sees the old file or the new, never half.
  """
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + '.tmp')
  with tmp.open(mode) as f:
    f.write(data)
  tmp.replace(path)


def write_text(path: epath.PathLike, text: str) -> None:
  """Writes `text` to `path` atomically."""
  _write_atomically(path, text, 'w')


def write_bytes(path: epath.PathLike, data: bytes) -> None:
  """Writes `data` to `path` atomically."""
  _write_atomically(path, data, 'wb')


def open_file(path: epath.PathLike, mode: str) -> IO:
  """`path` opened for a caller that keeps it open across calls and closes it itself.

  epath opens a `gs://` file as a context manager around a `tf.io.gfile.GFile`; entering it
  gives the GFile (a local file enters as itself). Its `close()` flushes and closes.
  """
  return epath.Path(path).open(mode).__enter__()  # pylint: disable=unnecessary-dunder-call
