"""Datasets through TFDS, offline first: arrays standardized with training statistics, on device.

`digits` (scikit-learn's bundled 8x8 handwritten digits) and `fashion_mnist` from local IDX files
(Debian's `dataset-fashion-mnist`) are TFDS builders defined here, built into the data dir on
first use with no download. They are stored as array_record and read back through TFDS's data
source, which needs no TensorFlow: a sweep on them never imports it (seconds of import and of
interpreter exit; BENCHMARKS.md). Any other name goes to `tfds.load` and tf.data, which
download when they can.
"""

import functools
import gzip
import os

os.environ.setdefault('NO_GCE_CHECK', 'true')  # No metadata-server probe on machines off GCP.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

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


def _local_split(name, split, data_dir, manual_dir):
  """A split of a builder defined here, through TFDS's array_record data source (no TF)."""
  builder = tfds.builder(name, data_dir=data_dir or None, file_format='array_record')
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir or None))
  source = builder.as_data_source(split=split)
  examples = source.__getitems__(range(len(source)))
  return (np.stack([e['image'] for e in examples]),
          np.array([e['label'] for e in examples], np.int64))


def _tfds_split(name, split, data_dir, manual_dir):
  """A split of any other TFDS dataset, through tf.data (downloaded first when it can be)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.config.set_visible_devices([], 'GPU')  # TF is only the input pipeline: accelerators are JAX's.
  download_config = tfds.download.DownloadConfig(manual_dir=manual_dir or None)
  ds = tfds.load(name, split=split, data_dir=data_dir or None, as_supervised=True,
                 download_and_prepare_kwargs={'download_config': download_config})
  batches = list(tfds.as_numpy(ds.batch(4096)))
  return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def _split_as_numpy(name, split, data_dir, manual_dir):
  read = _local_split if name in LOCAL_BUILDERS else _tfds_split
  return read(name, split, data_dir, manual_dir)


def tfds_name(dataset_config: ml_collections.ConfigDict) -> str:
  """The builder behind `dataset.name`: the local Fashion-MNIST one when its files are here."""
  name = dataset_config.name
  if name == 'fashion_mnist' and local_fashion_mnist_dir(dataset_config.manual_dir):
    return 'fashion_mnist_local'
  return name


@functools.lru_cache(maxsize=4)
def load_numpy(name: str, data_dir: str = '', manual_dir: str = '', val_fraction: float = 0.2
               ) -> tuple[dict[str, np.ndarray], int]:
  """Train/val/test as standardized float32 NHWC arrays and int32 labels, plus num_classes."""
  x, y = _split_as_numpy(name, 'train', data_dir, manual_dir)
  x_test, y_test = _split_as_numpy(name, 'test', data_dir, manual_dir)
  order = np.random.default_rng(0).permutation(len(y))  # A fixed split: seed-independent.
  num_val = int(round(val_fraction * len(y)))
  val, train = order[:num_val], order[num_val:]
  x_train = x[train].astype(np.float32)
  axes = tuple(range(x_train.ndim - 1))  # Per channel, over examples and pixels.
  mean, std = x_train.mean(axes), x_train.std(axes) + 1e-6
  scale = lambda a: ((a.astype(np.float32) - mean) / std).astype(np.float32)
  num_classes = int(max(y.max(), y_test.max())) + 1
  return {'x_train': scale(x_train), 'y_train': y[train].astype(np.int32),
          'x_val': scale(x[val]), 'y_val': y[val].astype(np.int32),
          'x_test': scale(x_test), 'y_test': y_test.astype(np.int32)}, num_classes


def load(dataset_config: ml_collections.ConfigDict) -> tuple[dict[str, jax.Array], int]:
  """The dataset of a config as device arrays (placed once) and its number of classes."""
  arrays, num_classes = load_numpy(
      tfds_name(dataset_config), dataset_config.data_dir, dataset_config.manual_dir,
      float(dataset_config.val_fraction))
  # Not jnp.asarray: it compiles an identity program per array (BENCHMARKS.md, change 14).
  return {k: jax.device_put(v) for k, v in arrays.items()}, num_classes
