"""dataset.name=npz:PATH: the user's own arrays, scaled and carved out as every dataset, trained
end to end through launch.py; each malformed file is one line naming dataset.name."""

import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from bnlab import checks
from bnlab import data as data_lib
from bnlab import npz
from bnlab import records
from bnlab import workdir as workdir_lib
from tests.conftest import ROOT


def _arrays(features, num_train=96, num_test=24, num_classes=3, seed=0):
  """A learnable toy task: the label is which third of the range the features' mean falls in."""
  rng = np.random.default_rng(seed)
  out = {}
  for split, count in (('train', num_train), ('test', num_test)):
    x = rng.uniform(0, 10, (count, *features)).astype(np.float32)
    y = np.digitize(x.reshape(count, -1).mean(1), [4.5, 5.5]).astype(np.int64)
    out[f'x_{split}'], out[f'y_{split}'] = x, y
  assert set(np.unique(out['y_train'])) == set(range(num_classes))
  return out


def _write(path, **arrays):
  np.savez(path, **arrays)
  return str(path)


def _launch(npz_path, workdir, *flags):
  return subprocess.Popen(
      [sys.executable, os.path.join(ROOT, 'launch.py'), '--config=configs/test.py',
       f'--workdir={workdir}', f'--config.dataset.name=npz:{npz_path}',
       '--config.sweep.num_trials=2', '--config.train.epochs=1', *flags],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """Both launches started together: {name: (workdir, returncode, stderr)}."""
  base = tmp_path_factory.mktemp('npz')
  flat = _write(base / 'flat.npz', **_arrays((5,)))
  images = _arrays((4, 4, 1))
  val = _arrays((4, 4, 1), num_train=30, seed=1)
  images.update(x_val=val['x_train'], y_val=val['y_train'])
  image_path = _write(base / 'images.npz', **images)
  started = {
      'flat_mlp': _launch(flat, base / 'flat'),
      'images_cnn': _launch(image_path, base / 'images', '--config.model.name=cnn',
                            '--config.sweep.space.model.widths=choice((8,), (4,))'),
      'missing_file': _launch(base / 'nowhere.npz', base / 'missing')}
  done = {}
  for name, process in started.items():
    _, stderr = process.communicate(timeout=600)  # Reads both pipes: a full one never blocks.
    done[name] = (base / name.split('_')[0], process.returncode, stderr)
  return done


@pytest.mark.parametrize('name', ['flat_mlp', 'images_cnn'])
def test_an_npz_sweep_trains_end_to_end(runs, name):
  workdir, returncode, stderr = runs[name]
  assert returncode == 0, stderr[-3000:]
  with open(os.path.join(workdir, 'results.csv')) as f:
    rows = list(csv.DictReader(f))
  assert [r['status'] for r in rows] == ['ok', 'ok']
  assert all(0 <= float(r['val_accuracy']) <= 1 for r in rows)
  with open(os.path.join(workdir, workdir_lib.DATASET)) as f:
    recorded = json.load(f)
  assert recorded['sha256'] == npz.digest(recorded['name'])


def test_a_resume_after_the_file_changed_is_refused_naming_the_field(tmp_path):
  path = _write(tmp_path / 'a.npz', **_arrays((5,)))
  name, workdir = f'npz:{path}', str(tmp_path / 'w')
  os.makedirs(workdir)
  workdir_lib.check_dataset(workdir, name)  # A new sweep records the file's digest.
  workdir_lib.check_dataset(workdir, name)  # The same file resumes.
  _write(tmp_path / 'a.npz', **_arrays((5,), seed=1))
  with pytest.raises(records.ConfigError, match=re.escape(
      f"dataset.name={name!r}: the file changed since workdir {workdir} was trained on it")):
    workdir_lib.check_dataset(workdir, name)
  with open(os.path.join(workdir, workdir_lib.DATASET), 'w') as f:
    f.write('{"name": ')
  with pytest.raises(records.ConfigError, match='dataset.json is damaged'):
    workdir_lib.check_dataset(workdir, name)
  workdir_lib.check_dataset(str(tmp_path / 'w2'), 'digits')  # Only npz files are recorded.
  assert not os.path.exists(tmp_path / 'w2')


def test_a_missing_file_is_one_line_and_exit_2(runs):
  workdir, returncode, stderr = runs['missing_file']
  assert returncode == 2
  lines = stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].endswith("nowhere.npz': no such file"), stderr
  assert "dataset.name='npz:" in lines[0]
  assert not workdir.exists()


@pytest.mark.parametrize('features', [(5,), (4, 4, 1)])
def test_splits_carve_out_and_scaling_are_those_of_every_dataset(tmp_path, features):
  arrays = _arrays(features)
  path = _write(tmp_path / 'a.npz', **arrays)
  loaded, num_classes = data_lib.load_numpy(f'npz:{path}', val_fraction=0.25)
  expected, expected_classes, _ = data_lib.split_and_scale(arrays, 0.25, 'standardize')
  assert num_classes == expected_classes == 3
  assert loaded.keys() == expected.keys()
  for key, value in loaded.items():
    np.testing.assert_array_equal(value, expected[key])
  assert loaded['x_train'].shape == (72, *features) and loaded['x_val'].shape == (24, *features)
  assert loaded['y_train'].dtype == np.int32
  np.testing.assert_allclose(loaded['x_train'].mean(0 if len(features) == 1 else (0, 1, 2)), 0,
                             atol=1e-5)


def test_given_val_split_is_used_as_is_and_num_classes_spans_every_split(tmp_path):
  arrays = _arrays((5,))
  arrays.update(x_val=arrays['x_test'][:4], y_val=np.array([0, 1, 2, 6]))  # Class 6: val only.
  path = _write(tmp_path / 'a.npz', **arrays)
  loaded, num_classes = data_lib.load_numpy(f'npz:{path}', scaling='none')
  assert num_classes == 7
  np.testing.assert_array_equal(loaded['x_train'], arrays['x_train'])
  np.testing.assert_array_equal(loaded['x_val'], arrays['x_val'])
  np.testing.assert_array_equal(loaded['y_val'], [0, 1, 2, 6])


def _broken(**changes):
  """The toy arrays with `changes` applied (None deletes a key)."""
  arrays = _arrays((5,))
  arrays.update(changes)
  return {k: v for k, v in arrays.items() if v is not None}


BAD = [
    ('missing_key', _broken(y_test=None),
     'missing key(s) y_test; it needs x_train, y_train, x_test, y_test (x_val, y_val optional; '
     'it has x_test, x_train, y_train)'),
    ('val_without_labels', _broken(x_val=np.zeros((3, 5))), 'missing key(s) y_val;'),
    ('lengths_differ', _broken(y_train=np.zeros(95, np.int64)),
     'x_train has 96 examples but y_train has 95'),
    ('float_labels', _broken(y_test=np.zeros(24, np.float32)),
     'y_test has dtype float32; labels must be integers (class indices 0, 1, ...)'),
    ('negative_label', _broken(y_train=np.r_[-1, np.zeros(95, np.int64)]),
     'y_train holds the label -1 < 0; labels are class indices 0, 1, ...'),
    ('labels_not_1d', _broken(y_train=np.zeros((96, 1), np.int64)),
     'y_train has shape (96, 1); labels must be 1-D, one per example'),
    ('features_differ', _broken(x_test=np.zeros((24, 6))),
     'x_test has features of shape (6,) but x_train has (5,)'),
]


@pytest.mark.parametrize('arrays,message', [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_malformed_npz_is_one_line_naming_dataset_name(arrays, message, tmp_path, config,
                                                         monkeypatch):
  path = _write(tmp_path / 'bad.npz', **arrays)
  config.dataset.name = f'npz:{path}'
  monkeypatch.setattr(data_lib, 'load_numpy', None)  # Refused before any load.
  with pytest.raises(checks.ConfigError) as e:
    checks.check_config(config)
  assert str(e.value).startswith(f"dataset.name='npz:{path}': ")
  assert message in str(e.value) and '\n' not in str(e.value)


def test_a_file_that_is_no_npz_is_one_line(tmp_path, config):
  path = tmp_path / 'notes.npz'
  path.write_text('not a zip')
  config.dataset.name = f'npz:{path}'
  with pytest.raises(checks.ConfigError, match=r"notes.npz': not a readable .npz"):
    checks.check_config(config)
