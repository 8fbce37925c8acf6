"""The builders defined in bnlab.data: stored as array_record, read back without TensorFlow."""

import os
import subprocess
import sys

import numpy as np

from bnlab import data as data_lib
from tests.conftest import ROOT

READ_DIGITS = """
import sys
sys.path.insert(0, {root!r})
from bnlab import data
arrays, num_classes = data.load_numpy('digits', {data_dir!r})
print(arrays['x_train'].shape, num_classes, 'tensorflow' in sys.modules)
"""


def test_digits_load_in_a_process_that_never_imports_tensorflow(digits, data_dir):
  result = subprocess.run([sys.executable, '-c', READ_DIGITS.format(root=ROOT, data_dir=data_dir)],
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split('\n')[0] == f'{digits[0]["x_train"].shape} 10 False'


def _write_idx(path, array):
  """An IDX file (the MNIST family's format): magic (0, 0, uint8 type 8, ndim), dims, data."""
  header = bytes([0, 0, 8, array.ndim]) + b''.join(d.to_bytes(4, 'big') for d in array.shape)
  with open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


def _examples(images, labels):
  return sorted(image.tobytes() + bytes([label]) for image, label in zip(images, labels))


def test_fashion_mnist_builds_from_local_idx_files_with_every_example(tmp_path):
  rng = np.random.default_rng(0)
  manual_dir = tmp_path / 'idx'
  manual_dir.mkdir()
  idx = {}
  for split, count in (('train', 30), ('test', 10)):
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, count, dtype=np.uint8)
    for name, array in zip(data_lib._IDX_FILES[split], (images, labels)):  # pylint: disable=protected-access
      _write_idx(manual_dir / name, array)
    idx[split] = images, labels
  assert data_lib.local_fashion_mnist_dir(str(manual_dir)) == str(manual_dir)
  for split in idx:
    x, y = data_lib._local_split('fashion_mnist_local', split, str(tmp_path / 'tfds'),  # pylint: disable=protected-access
                                 str(manual_dir))
    assert x.shape == (len(y), 28, 28, 1)
    assert _examples(x[..., 0], y) == _examples(*idx[split])  # Every example, none twice.
  prepared = tmp_path / 'tfds' / 'fashion_mnist_local' / str(data_lib.LOCAL_VERSION)
  assert any(name.endswith('array_record-00000-of-00001') for name in os.listdir(prepared))
