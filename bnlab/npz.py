"""Your own arrays: `dataset.name=npz:PATH`, a NumPy .npz with x_train, y_train, x_test, y_test
(and optionally x_val, y_val), any feature shape, integer labels.

Read and checked here, once: the config check (before anything compiles) and bnlab.data's load
share the cached arrays. bnlab.data scales and carves them out as it does every dataset.
"""

import functools
import hashlib
import os
import zipfile

import numpy as np

from bnlab import records

PREFIX = 'npz:'  # dataset.name=npz:PATH: the user's own arrays.
KEYS = ('x_train', 'y_train', 'x_test', 'y_test')  # Required; x_val and y_val optional.
SPLITS = ('train', 'val', 'test')


def _check_split(where, arrays, split):
  """One split of a user's .npz: features of one shape per example, one integer label each."""
  x, y = arrays[f'x_{split}'], arrays[f'y_{split}']
  problem = ''
  if x.ndim < 2 or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
    problem = (f'x_{split} has shape {x.shape} and dtype {x.dtype}; it must be numbers shaped '
               '(examples, features...)')
  elif y.ndim != 1:
    problem = f'y_{split} has shape {y.shape}; labels must be 1-D, one per example'
  elif len(x) != len(y):
    problem = f'x_{split} has {len(x)} examples but y_{split} has {len(y)}'
  elif not np.issubdtype(y.dtype, np.integer):
    problem = (f'y_{split} has dtype {y.dtype}; labels must be integers (class indices '
               '0, 1, ...)')
  elif y.size and y.min() < 0:
    problem = f'y_{split} holds the label {y.min()} < 0; labels are class indices 0, 1, ...'
  elif x.shape[1:] != arrays['x_train'].shape[1:]:
    problem = (f'x_{split} has features of shape {x.shape[1:]} but x_train has '
               f'{arrays["x_train"].shape[1:]}')
  if problem:
    raise records.ConfigError(f'{where}: {problem}')


@functools.lru_cache(maxsize=1)
def _read(path, stamp):
  """The arrays of a .npz, checked; `stamp` (mtime, size) re-reads a file that changed. Cached:
  the config check and the load read it once between them."""
  del stamp
  where = f'dataset.name={PREFIX + path!r}'
  if not os.path.isfile(path):
    raise records.ConfigError(f'{where}: no such file')
  try:
    with np.load(path, allow_pickle=False) as archive:  # No pickles: a data file runs no code.
      arrays = {k: archive[k] for k in archive.files}
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise records.ConfigError(f'{where}: not a readable .npz ({e})') from None
  missing = [k for k in KEYS if k not in arrays]
  missing += [k for k, other in (('x_val', 'y_val'), ('y_val', 'x_val'))
              if other in arrays and k not in arrays]
  if missing:
    raise records.ConfigError(
        f'{where}: missing key(s) {", ".join(missing)}; it needs x_train, y_train, x_test, '
        f'y_test (x_val, y_val optional; it has {", ".join(sorted(arrays)) or "none"})')
  for split in SPLITS:
    if f'x_{split}' in arrays:
      _check_split(where, arrays, split)
  if not len(arrays['y_train']):
    raise records.ConfigError(f'{where}: x_train holds no examples')
  return {k: arrays[k] for k in KEYS + ('x_val', 'y_val') if k in arrays}


def read(path: str) -> dict[str, np.ndarray]:
  """A user's .npz as {x_train, y_train, x_test, y_test[, x_val, y_val]}; raises ConfigError
  (one line naming dataset.name and the problem) for a missing file, missing keys, lengths of x
  and y that differ, labels that are not integers or are negative."""
  stat = os.stat(path) if os.path.isfile(path) else None
  return _read(path, stat and (stat.st_mtime_ns, stat.st_size))


def digest(name: str) -> str:
  """The sha256 of the file behind `dataset.name=npz:PATH`, to know it again on a resume."""
  with open(name[len(PREFIX):], 'rb') as f:
    return hashlib.file_digest(f, 'sha256').hexdigest()
