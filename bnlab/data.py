"""Datasets through TFDS or a .npz, offline first: scaled with training statistics, on device.

`digits` (scikit-learn's bundled 8x8 handwritten digits) and `fashion_mnist` from local IDX files
(Debian's `dataset-fashion-mnist`) are TFDS builders defined here, built into the data dir on
first use with no download. They are stored as array_record and read back through TFDS's data
source, which needs no TensorFlow: a sweep on them never imports it (seconds of import and of
interpreter exit; BENCHMARKS.md). The arrays it gives are kept beside the builder's files
(ARRAYS_FILE, with their digest) and read from there by later launches. Any other name goes to
`tfds.load` and tf.data, which download when they can: a dataset not yet in the data dir whose
download hosts cannot be reached is refused in one line within seconds, not after minutes of
TFDS's retries.
"""

import functools
import gzip
import io
import os
import socket
import threading
import time
import urllib.parse
import urllib.request
import zipfile
from typing import NamedTuple

os.environ.setdefault('NO_GCE_CHECK', 'true')  # No metadata-server probe on machines off GCP.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import logging
import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from bnlab import files
from bnlab import integrity
from bnlab import lazy
from bnlab import npz
from bnlab import records

FASHION_MNIST_DIRS = ('/usr/share/datasets/fashion-mnist',)
_IDX_FILES = {'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
              'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}


LOCAL_BUILDERS = ('digits', 'fashion_mnist_local')  # Defined here, stored as array_record.
LOCAL_VERSION = tfds.core.Version('1.1.0')
LOCAL_RELEASE_NOTES = {'1.0.0': 'PNG images in TFRecord files.',
                       '1.1.0': 'Raw uint8 tensors in array_record files: read without TensorFlow.'}


def _image_features(shape, num_classes):
  return tfds.features.FeaturesDict({
      'image': tfds.features.Tensor(shape=shape, dtype=np.uint8),
      'label': tfds.features.ClassLabel(num_classes=num_classes)})


class Digits(tfds.core.GeneratorBasedBuilder):
  """scikit-learn's 1,797 handwritten digits (8x8, values 0-16); a fixed 80/20 train/test split."""

  VERSION, RELEASE_NOTES = LOCAL_VERSION, LOCAL_RELEASE_NOTES

  def _info(self):
    return self.dataset_info_from_configs(
        features=_image_features((8, 8, 1), 10), supervised_keys=('image', 'label'))

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the data ships inside scikit-learn.
    return {'train': self._generate_examples(True), 'test': self._generate_examples(False)}

  def _generate_examples(self, train):
    from sklearn import datasets  # pylint: disable=import-outside-toplevel
    digits = datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    cut = int(0.8 * len(order))
    for i in (order[:cut] if train else order[cut:]):
      image = digits.images[i].astype(np.uint8)[..., None]
      yield int(i), {'image': image, 'label': int(digits.target[i])}


class FashionMnistLocal(tfds.core.GeneratorBasedBuilder):
  """Fashion-MNIST from local IDX files (manual_dir or Debian's package), no download."""

  VERSION, RELEASE_NOTES = LOCAL_VERSION, LOCAL_RELEASE_NOTES
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Put the four IDX files of Fashion-MNIST in dataset.manual_dir, '
      'or `apt-get install dataset-fashion-mnist`.')

  def _info(self):
    return self.dataset_info_from_configs(
        features=_image_features((28, 28, 1), 10), supervised_keys=('image', 'label'))

  def _split_generators(self, dl_manager):
    try:
      manual_dir = str(dl_manager.manual_dir)
    except (AssertionError, ValueError):  # TFDS raises when no manual dir was given.
      manual_dir = ''
    folder = local_fashion_mnist_dir(manual_dir)
    return {split: self._generate_examples(folder, split) for split in _IDX_FILES}

  def _generate_examples(self, folder, split):
    images, labels = (read_idx(os.path.join(folder, name)) for name in _IDX_FILES[split])
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {'image': image[..., None], 'label': int(label)}


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file (optionally .gz): the format of the MNIST family's raw files."""
  path = path if os.path.exists(path) else path + '.gz'
  with (gzip.open if path.endswith('.gz') else open)(path, 'rb') as f:
    raw = f.read()
  ndim = raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
  return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def local_fashion_mnist_dir(manual_dir: str = '') -> str | None:
  """The first folder holding Fashion-MNIST's IDX files, or None."""
  for folder in ((manual_dir,) if manual_dir else ()) + FASHION_MNIST_DIRS:
    name = os.path.join(folder, _IDX_FILES['train'][0])
    if os.path.exists(name) or os.path.exists(name + '.gz'):
      return folder
  return None


@functools.lru_cache(maxsize=4)
def _local_builder(name, data_dir, manual_dir):
  """A builder defined here, made and prepared once for all its splits: one per split printed
  TFDS's "Load dataset info" and "Reusing dataset" lines once per split."""
  builder = tfds.builder(name, data_dir=data_dir or None, file_format='array_record')
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir or None))
  return builder


ARRAYS_FILE = 'bnlab_{split}_arrays.npz'  # Beside the builder's own files, in its data dir.


def _local_split(name, split, data_dir, manual_dir):
  """A split of a builder defined here, as TFDS's array_record data source gives it (no TF).

  The data source decodes one example at a time (2.7 s for Fashion-MNIST's 60,000), so the
  stacked arrays are kept beside the builder's files in one .npz with their sha256, and read
  from there (0.3 s) while that digest holds; a file that does not verify is made again."""
  builder = _local_builder(name, data_dir, manual_dir)
  path = os.path.join(str(builder.data_dir), ARRAYS_FILE.format(split=split))
  kept = _read_arrays(path)
  if kept is not None:
    return kept
  source = builder.as_data_source(split=split)
  examples = source.__getitems__(range(len(source)))
  arrays = (np.stack([e['image'] for e in examples]),
            np.array([e['label'] for e in examples], np.int64))
  out = io.BytesIO()
  np.savez(out, images=arrays[0], labels=arrays[1], sha256=_digest(*arrays))
  try:
    files.write_bytes(path, out.getvalue())
  except OSError as e:  # A read-only data dir: every launch reads the data source instead.
    logging.warning('%s: not written (%s); the data source is read at every launch', path, e)
  return arrays


def _digest(images: np.ndarray, labels: np.ndarray) -> str:
  layout = repr((images.shape, images.dtype.str, labels.shape, labels.dtype.str))
  return integrity.sha256(layout.encode() + images.tobytes() + labels.tobytes())


def _read_arrays(path: str) -> tuple[np.ndarray, np.ndarray] | None:
  """(images, labels) of a .npz that _local_split wrote, or None where it is absent, unreadable
  or its arrays do not match its digest."""
  if not files.exists(path):
    return None
  try:
    with files.open_file(path, 'rb') as f, np.load(f) as kept:
      images, labels, digest = kept['images'], kept['labels'], str(kept['sha256'])
  except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
    logging.warning('%s: unreadable (%s); read from the data source again', path, e)
    return None
  if _digest(images, labels) != digest:
    logging.warning('%s: its arrays do not match their digest; read from the data source again',
                    path)
    return None
  return images, labels


# Tried when a builder lists no download URLs: reaching it at all says whether we are online.
FALLBACK_HOST = ('storage.googleapis.com', 443)
PROBE_SECONDS = 3.0
OFFLINE = ('digits, or fashion_mnist from its four IDX files in dataset.manual_dir (or Debian\'s '
           'dataset-fashion-mnist package)')


def download_hosts(builder: tfds.core.DatasetBuilder) -> list[tuple[str, int]]:
  """(host, port) that preparing `builder` connects to: its URLs' hosts, or their proxy."""
  try:
    urls = list(builder.url_infos or {})
  except Exception:  # pylint: disable=broad-except  # Unreadable checksums: probe the fallback.
    urls = []
  if not urls and builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
    return []  # Prepared from files the user downloads into manual_dir: no network.
  proxies = urllib.request.getproxies()
  hosts = set() if urls else {FALLBACK_HOST}
  for url in urls:
    parts = urllib.parse.urlparse(url)
    proxy = proxies.get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
      parts = urllib.parse.urlparse(proxy if '://' in proxy else f'http://{proxy}')
    hosts.add((parts.hostname, parts.port or (443 if parts.scheme == 'https' else 80)))
  return sorted(hosts)


def unreachable(hosts: list[tuple[str, int]], seconds: float = PROBE_SECONDS) -> list[str]:
  """The hosts that no TCP connection reaches within `seconds` (all probed at once). A thread
  each: a name lookup offline can outlast any socket timeout."""
  reached = set()

  def connect(address):
    try:
      socket.create_connection(address, timeout=seconds).close()
      reached.add(address)
    except OSError:
      pass
  threads = [threading.Thread(target=connect, args=(a,), daemon=True) for a in hosts]
  deadline = time.monotonic() + seconds
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join(max(0.0, deadline - time.monotonic()))
  return [host for host, port in hosts if (host, port) not in reached]


def check_downloadable(name: str, builder: tfds.core.DatasetBuilder) -> None:
  """Refuses a dataset that is not prepared and cannot be downloaded now, naming the ones that
  need no network; TFDS would retry for minutes, then print a page of traceback."""
  if builder.is_prepared():
    return
  hosts = unreachable(download_hosts(builder))
  if hosts:
    raise records.ConfigError(
        f'dataset.name={name!r} is not in {builder.data_dir} and its download host '
        f'{", ".join(hosts)} cannot be reached (offline?); without a network use {OFFLINE}, '
        'or prepare it into dataset.data_dir on a machine that is online')


def _tfds_splits(name, splits, data_dir, manual_dir):
  """Splits of any other TFDS dataset, through tf.data (downloaded first when it can be), in one
  tfds.load: its info is read and logged once, not once per split."""
  check_downloadable(name, tfds.builder(name, data_dir=data_dir or None))  # Before TF's import.
  tf = lazy.import_module('tensorflow')
  tf.config.set_visible_devices([], 'GPU')  # TF is only the input pipeline: accelerators are JAX's.
  download_config = tfds.download.DownloadConfig(manual_dir=manual_dir or None)
  datasets = tfds.load(name, split=list(splits), data_dir=data_dir or None, as_supervised=True,
                       download_and_prepare_kwargs={'download_config': download_config})
  out = []
  for ds in datasets:
    batches = list(tfds.as_numpy(ds.batch(4096)))
    out.append((np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])))
  return out


def tfds_name(dataset_config: ml_collections.ConfigDict) -> str:
  """The builder behind `dataset.name`: the local Fashion-MNIST one when its files are here."""
  name = dataset_config.name
  if name == 'fashion_mnist' and local_fashion_mnist_dir(dataset_config.manual_dir):
    return 'fashion_mnist_local'
  return name


SPLITS = npz.SPLITS  # train, val, test


def _standardize(x, axes):
  return x.mean(axes), x.std(axes) + 1e-6


def _minmax_range(x, axes):
  low, high = x.min(axes), x.max(axes)
  # A constant channel maps to 0 rather than dividing by zero.
  return low, high, np.where(high > low, high - low, 1).astype(np.float32)


def _minmax(x, axes):
  low, _, span = _minmax_range(x, axes)
  return low, span


def _minmax_symmetric(x, axes):
  low, high, span = _minmax_range(x, axes)
  return (low + high) / 2, span / 2


def _raw(x, axes):
  del axes
  return np.zeros(x.shape[-1], np.float32), np.ones(x.shape[-1], np.float32)


# dataset.scaling: {name: fit(x_train, axes) -> (shift, scale)}; inputs become (x - shift) / scale.
SCALINGS = {'standardize': _standardize, 'minmax': _minmax,  # Zero mean, unit variance; [0, 1].
            'minmax_symmetric': _minmax_symmetric, 'none': _raw}  # [-1, 1]; the raw values.


class Scaling(NamedTuple):
  """The fitted input scaling: x -> (x - shift) / scale, per channel (the last axis)."""
  shift: np.ndarray  # [C], float32
  scale: np.ndarray  # [C], float32


def fit_scaling(x_train: np.ndarray, kind: str) -> Scaling:
  """`dataset.scaling` fitted on the training split alone, per channel over examples and pixels
  (per feature for flat inputs)."""
  x = x_train.astype(np.float32)
  shift, scale = SCALINGS[kind](x, tuple(range(x.ndim - 1)))
  return Scaling(np.asarray(shift, np.float32), np.asarray(scale, np.float32))


def apply_scaling(x: np.ndarray, fitted: Scaling) -> np.ndarray:
  return ((x.astype(np.float32) - fitted.shift) / fitted.scale).astype(np.float32)


def carve_out(num_examples: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
  """(train, val) indices of the training split: a fixed split, seed-independent."""
  order = np.random.default_rng(0).permutation(num_examples)
  num_val = int(round(val_fraction * num_examples))
  return order[num_val:], order[:num_val]


def split_and_scale(raw: dict[str, np.ndarray], val_fraction: float, scaling: str
                    ) -> tuple[dict[str, np.ndarray], int, Scaling]:
  """x_/y_ train, val, test (float32, int32), num_classes and the fitted scaling, from raw
  x_train, y_train, x_test, y_test and optionally x_val, y_val (else carved out of train)."""
  splits = dict(raw)
  if 'x_val' not in raw:
    train, val = carve_out(len(raw['y_train']), val_fraction)
    splits.update(x_train=raw['x_train'][train], y_train=raw['y_train'][train],
                  x_val=raw['x_train'][val], y_val=raw['y_train'][val])
  # Fitted after the carve-out, on training examples only: no val or test statistic leaks in.
  fitted = fit_scaling(splits['x_train'], scaling)
  num_classes = int(max(splits[f'y_{s}'].max(initial=0) for s in SPLITS)) + 1
  arrays = {}
  for s in SPLITS:
    arrays[f'x_{s}'] = apply_scaling(splits[f'x_{s}'], fitted)
    arrays[f'y_{s}'] = splits[f'y_{s}'].astype(np.int32)
  return arrays, num_classes, fitted


def _read_raw(name, data_dir, manual_dir):
  if name.startswith(npz.PREFIX):
    return npz.read(name[len(npz.PREFIX):])
  if name in LOCAL_BUILDERS:
    (x, y), (x_test, y_test) = (_local_split(name, split, data_dir, manual_dir)
                                for split in ('train', 'test'))
  else:
    (x, y), (x_test, y_test) = _tfds_splits(name, ('train', 'test'), data_dir, manual_dir)
  return {'x_train': x, 'y_train': y, 'x_test': x_test, 'y_test': y_test}


@functools.lru_cache(maxsize=4)
def load_numpy(name: str, data_dir: str = '', manual_dir: str = '', val_fraction: float = 0.2,
               scaling: str = 'standardize') -> tuple[dict[str, np.ndarray], int]:
  """Train/val/test as float32 NHWC arrays scaled with training statistics (`dataset.scaling`)
  and int32 labels, plus num_classes."""
  arrays, num_classes, _ = split_and_scale(_read_raw(name, data_dir, manual_dir), val_fraction,
                                           scaling)
  return arrays, num_classes


def load(dataset_config: ml_collections.ConfigDict) -> tuple[dict[str, jax.Array], int]:
  """The dataset of a config as device arrays (placed once) and its number of classes."""
  arrays, num_classes = load_numpy(
      tfds_name(dataset_config), dataset_config.data_dir, dataset_config.manual_dir,
      float(dataset_config.val_fraction), dataset_config.scaling)
  # Not jnp.asarray: it compiles an identity program per array (BENCHMARKS.md, change 14).
  return {k: jax.device_put(v) for k, v in arrays.items()}, num_classes
