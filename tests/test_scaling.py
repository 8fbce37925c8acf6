"""dataset.scaling: each mode against a NumPy reference, fitted on the training split alone."""

import os
import subprocess
import sys

import numpy as np
import pytest

from bnlab import checks
from bnlab import data as data_lib
from tests.conftest import ROOT

MODES = ('standardize', 'minmax', 'minmax_symmetric', 'none')
X_KEYS = ('x_train', 'x_val', 'x_test')


def _reference(raw, mode):
  """The scaled splits by the textbook formulas, statistics from raw['x_train'] (digits has one
  channel, so per channel = over every pixel of every training image)."""
  train = raw['x_train'].astype(np.float64)
  low, high = train.min(), train.max()
  formulas = {
      'standardize': lambda x: (x - train.mean()) / (train.std() + 1e-6),
      'minmax': lambda x: (x - low) / (high - low),
      'minmax_symmetric': lambda x: 2 * (x - low) / (high - low) - 1,
      'none': lambda x: x}
  return {k: formulas[mode](raw[k].astype(np.float64)) for k in X_KEYS}


@pytest.fixture(scope='module')
def raw_digits(data_dir):
  """digits unscaled (mode none) in the loader's split and order."""
  arrays, _ = data_lib.load_numpy('digits', data_dir, scaling='none')
  return arrays


def test_none_keeps_the_raw_pixels_of_every_digit(raw_digits):
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  images = datasets.load_digits().images[..., None].astype(np.float32)
  rows = np.concatenate([raw_digits[k] for k in X_KEYS])
  assert rows.dtype == np.float32
  assert sorted(r.tobytes() for r in rows) == sorted(r.tobytes() for r in images)


@pytest.mark.parametrize('mode', MODES)
def test_each_mode_matches_its_numpy_reference(mode, raw_digits, data_dir):
  arrays, num_classes = data_lib.load_numpy('digits', data_dir, scaling=mode)
  assert num_classes == 10
  expected = _reference(raw_digits, mode)
  for key in X_KEYS:
    assert arrays[key].dtype == np.float32
    np.testing.assert_allclose(arrays[key], expected[key], rtol=1e-5, atol=1e-5, err_msg=key)
    np.testing.assert_array_equal(arrays[key.replace('x', 'y')],
                                  raw_digits[key.replace('x', 'y')])
  train = arrays['x_train']
  if mode == 'standardize':
    np.testing.assert_allclose([train.mean(), train.std()], [0, 1], atol=1e-4)
  elif mode != 'none':
    assert (train.min(), train.max()) == ((0.0, 1.0) if mode == 'minmax' else (-1.0, 1.0))


def test_the_default_is_standardize(config):
  assert config.dataset.scaling == 'standardize'


def test_a_flat_input_is_scaled_per_feature():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(50, 3)) * [1, 10, 100] + [0, 5, -5]
  raw = {'x_train': x, 'y_train': np.zeros(50, int), 'x_test': x[:5], 'y_test': np.zeros(5, int)}
  arrays, _, fitted = data_lib.split_and_scale(raw, 0.2, 'minmax')
  assert fitted.shift.shape == (3,)
  np.testing.assert_allclose(arrays['x_train'].min(0), 0, atol=1e-6)
  np.testing.assert_allclose(arrays['x_train'].max(0), 1, atol=1e-6)


def _digits_raw(with_val):
  """scikit-learn's digits as raw splits (train, test; and val when `with_val`)."""
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  digits = datasets.load_digits()
  x, y = digits.images[..., None].astype(np.uint8), digits.target
  raw = {'x_train': x[:1200], 'y_train': y[:1200], 'x_test': x[1500:], 'y_test': y[1500:]}
  if with_val:
    raw.update(x_val=x[1200:1500], y_val=y[1200:1500])
  return raw


def _scaled_up(raw, rows, key='x_train'):
  """`raw` with raw[key][rows] and every test example multiplied by 100."""
  out = dict(raw)
  out[key] = raw[key].astype(np.float64)
  out[key][rows] *= 100
  out['x_test'] = raw['x_test'] * 100.0
  return out


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('with_val', [False, True], ids=['carved_out_val', 'given_val'])
def test_no_val_or_test_statistic_leaks_into_the_scaling(mode, with_val):
  raw = _digits_raw(with_val)
  if with_val:
    changed = _scaled_up(raw, slice(None), 'x_val')
  else:  # The val examples are those the carve-out takes out of x_train.
    _, val = data_lib.carve_out(len(raw['y_train']), 0.2)
    changed = _scaled_up(raw, val)
  before, _, fitted = data_lib.split_and_scale(raw, 0.2, mode)
  after, _, refitted = data_lib.split_and_scale(changed, 0.2, mode)
  np.testing.assert_array_equal(fitted.shift, refitted.shift)
  np.testing.assert_array_equal(fitted.scale, refitted.scale)
  np.testing.assert_array_equal(before['x_train'], after['x_train'])
  for key in ('x_val', 'x_test'):  # The change did reach val and test: the test can fail.
    assert not np.array_equal(before[key], after[key])


@pytest.mark.parametrize('mode', ('standardize', 'minmax', 'minmax_symmetric'))
def test_a_changed_training_example_changes_the_statistics(mode):
  raw = _digits_raw(False)
  train, _ = data_lib.carve_out(len(raw['y_train']), 0.2)
  _, _, fitted = data_lib.split_and_scale(raw, 0.2, mode)
  _, _, refitted = data_lib.split_and_scale(_scaled_up(raw, train[:1]), 0.2, mode)
  assert not np.array_equal(fitted.scale, refitted.scale)


def test_an_unknown_scaling_is_refused_before_any_data_loads(config, monkeypatch):
  config.dataset.scaling = 'zscore'

  def no_load(*args, **kwargs):
    raise AssertionError('data loaded')
  monkeypatch.setattr(data_lib, 'load_numpy', no_load)
  with pytest.raises(checks.ConfigError) as e:
    checks.check_config(config)
  assert str(e.value) == ("dataset.scaling='zscore' is not one of: standardize, minmax, "
                          'minmax_symmetric, none')


def test_an_unknown_scaling_is_one_line_and_exit_2(tmp_path, data_dir):
  workdir = tmp_path / 'run'
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'launch.py'), '--config=configs/test.py',
       f'--workdir={workdir}', f'--config.dataset.data_dir={data_dir}',
       '--config.dataset.scaling=zscore'],
      cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and 'dataset.scaling=' in lines[0] and 'minmax_symmetric' in lines[0]
  assert not workdir.exists()
