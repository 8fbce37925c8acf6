"""The builders defined in bnlab.data: stored as array_record, read back without TensorFlow."""

import os
import subprocess
import sys

import numpy as np
import pytest

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


def _from_the_data_source(name, split, data_dir):
  builder = data_lib._local_builder(name, data_dir, '')  # pylint: disable=protected-access
  source = builder.as_data_source(split=split)
  examples = source.__getitems__(range(len(source)))
  return np.stack([e['image'] for e in examples]), np.array([e['label'] for e in examples])


def _kept(data_dir, split):
  return os.path.join(data_dir, 'digits', str(data_lib.LOCAL_VERSION),
                      data_lib.ARRAYS_FILE.format(split=split))


def test_a_local_split_is_kept_beside_its_builder_and_read_back_equal(tmp_path):
  data_dir = str(tmp_path / 'tfds')
  first = data_lib._local_split('digits', 'train', data_dir, '')  # pylint: disable=protected-access
  assert os.path.exists(_kept(data_dir, 'train')) and not os.path.exists(_kept(data_dir, 'test'))
  again = data_lib._local_split('digits', 'train', data_dir, '')  # pylint: disable=protected-access
  source = _from_the_data_source('digits', 'train', data_dir)
  for arrays in (first, again):
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(arrays, source))
  assert again[1].dtype == np.int64 and again[0].dtype == np.uint8


@pytest.mark.parametrize('damage', ['flipped_byte', 'other_arrays', 'not_npz'])
def test_a_kept_split_that_does_not_verify_is_read_from_the_data_source_again(tmp_path, damage,
                                                                              caplog):
  data_dir = str(tmp_path / 'tfds')
  data_lib._local_split('digits', 'train', data_dir, '')  # pylint: disable=protected-access
  path = _kept(data_dir, 'train')
  with np.load(path) as kept:
    images, labels, digest = kept['images'], kept['labels'], kept['sha256']
  if damage == 'flipped_byte':  # The same digest over arrays that changed.
    images = images.copy()
    images.flat[7] ^= 1
    np.savez(path, images=images, labels=labels, sha256=digest)
  elif damage == 'other_arrays':  # Arrays of another split under this one's name and digest.
    np.savez(path, images=images[:5], labels=labels[:5], sha256=digest)
  else:
    with open(path, 'wb') as f:
      f.write(b'not an npz')
  arrays = data_lib._local_split('digits', 'train', data_dir, '')  # pylint: disable=protected-access
  source = _from_the_data_source('digits', 'train', data_dir)
  assert all(np.array_equal(a, b) for a, b in zip(arrays, source))
  assert any('read from the data source again' in r.getMessage() for r in caplog.records)
  with np.load(path) as kept:  # Written again, and it verifies.
    assert np.array_equal(kept['images'], source[0])


def test_a_read_only_data_dir_still_loads(tmp_path, monkeypatch):
  data_dir = str(tmp_path / 'tfds')
  data_lib._local_builder('digits', data_dir, '')  # pylint: disable=protected-access
  def refuse(path, data):
    raise PermissionError(13, 'Permission denied', path)
  monkeypatch.setattr(data_lib.files, 'write_bytes', refuse)
  arrays = data_lib._local_split('digits', 'test', data_dir, '')  # pylint: disable=protected-access
  assert all(np.array_equal(a, b) for a, b in zip(arrays, _from_the_data_source('digits', 'test',
                                                                              data_dir)))
  assert not os.path.exists(_kept(data_dir, 'test'))


def test_the_kept_arrays_digest_covers_their_dtypes_and_shapes():
  digest_of = data_lib._digest  # pylint: disable=protected-access
  images, labels = np.zeros((4, 2, 2, 1), np.uint8), np.arange(4, dtype=np.int64)
  digest = digest_of(images, labels)
  assert digest_of(images.reshape(4, 4, 1), labels) != digest
  assert digest_of(images, labels.view(np.uint64)) != digest
  assert digest_of(images.copy(), labels.copy()) == digest
