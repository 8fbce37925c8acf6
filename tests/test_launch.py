"""End to end through launch.py: the contract files, the best config re-run alone, bad input."""

import csv
import json
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from bnlab import data as data_lib
from bnlab import space
from bnlab import sweep
from tests.conftest import ROOT

CONTRACT_FILES = ('config.json', 'results.csv', 'history.jsonl', 'best.json', 'best_config.py',
                  'plots/curves.png')


def launch(*args, check=True, cwd=ROOT):
  result = subprocess.run([sys.executable, os.path.join(ROOT, 'launch.py'), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600, check=False)
  if check and result.returncode != 0:
    raise AssertionError(result.stderr[-3000:])
  return result


@pytest.fixture(scope='module')
def sweep_run(tmp_path_factory, data_dir):
  """(workdir, the finished launch) of the module's one sweep."""
  workdir = str(tmp_path_factory.mktemp('sweep'))
  return workdir, launch('--config=configs/test.py', f'--workdir={workdir}',
                         f'--config.dataset.data_dir={data_dir}')


@pytest.fixture(scope='module')
def sweep_dir(sweep_run):
  return sweep_run[0]


def test_the_run_ends_with_its_report_and_the_tensorboard_command(sweep_run):
  workdir, result = sweep_run
  *_, best, report, board = result.stdout.strip().splitlines()
  assert best.startswith('best: trial ')
  label, path = report.split(': ', 1)
  assert label == 'report' and path == os.path.join(workdir, 'report.html')
  assert os.path.getsize(path) > 0
  label, command = board.split(': ', 1)
  assert label == 'tensorboard' and shlex.split(command) == ['tensorboard', '--logdir', workdir]


def test_sweep_writes_every_contract_file(sweep_dir, config):
  for name in CONTRACT_FILES:
    assert os.path.getsize(os.path.join(sweep_dir, name)) > 0, name
  with open(os.path.join(sweep_dir, 'results.csv')) as f:
    rows = list(csv.DictReader(f))
  swept = ['model.bn_momentum', 'model.widths', 'optimizer.learning_rate']
  assert list(rows[0]) == ['trial'] + swept + [
      'status', 'val_accuracy', 'val_loss', 'test_accuracy', 'train_loss', 'epochs', 'seconds',
      'diverged_epoch', 'best_epoch', 'val_accuracy_best']
  assert [int(r['trial']) for r in rows] == list(range(config.sweep.num_trials))
  assert {r['status'] for r in rows} == {'ok'}
  for field in swept:
    assert os.path.getsize(os.path.join(sweep_dir, 'plots', f'metric_vs_{field}.png')) > 0
  with open(os.path.join(sweep_dir, 'history.jsonl')) as f:
    history = [json.loads(line) for line in f]
  assert len(history) == config.sweep.num_trials * config.train.epochs
  assert set(swept) <= set(history[0])
  with open(os.path.join(sweep_dir, 'best.json')) as f:
    best = json.load(f)
  assert best['val_accuracy'] == max(float(r['val_accuracy']) for r in rows)
  with open(os.path.join(sweep_dir, 'config.json')) as f:
    assert json.load(f)['sweep']['num_trials'] == config.sweep.num_trials


def test_best_config_trains_the_winner_alone_to_its_sweep_result(sweep_dir):
  with open(os.path.join(sweep_dir, 'best.json')) as f:
    best = json.load(f)
  launch(f'--config={os.path.join(sweep_dir, "best_config.py")}')  # Into <sweep>_best.
  with open(os.path.join(f'{sweep_dir}_best', 'results.csv')) as f:
    (alone,) = list(csv.DictReader(f))
  assert abs(float(alone['val_accuracy']) - best['val_accuracy']) <= 0.01


def test_a_relative_workdir_checkpoints_and_completes(tmp_path, data_dir):
  # The default workdir, runs/<config stem>, is relative; Orbax needs absolute paths inside.
  launch(f'--config={os.path.join(ROOT, "configs", "test.py")}', '--workdir=runs/rel',
         f'--config.dataset.data_dir={data_dir}', '--config.train.checkpoint_every=1',
         cwd=tmp_path)
  assert os.listdir(tmp_path / 'runs' / 'rel' / 'checkpoints' / 'journal')
  assert os.path.getsize(tmp_path / 'runs' / 'rel' / 'results.csv') > 0


def test_a_bad_input_is_one_line_before_compiling(tmp_path):
  result = launch('--config=configs/test.py', f'--workdir={tmp_path}/w',
                  '--config.optimizer.name=adm', check=False)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      "error: optimizer.name='adm' is not one of: sgd, momentum, rmsprop, adam, adamw")
  assert 'Traceback' not in result.stderr


def test_a_tfds_dataset_that_would_download_loads_through_mock_data(config, monkeypatch):
  config.dataset.name = 'mnist'
  # As on a machine that is online: mock_data stands in for the download it would make.
  monkeypatch.setattr(data_lib, 'unreachable', lambda hosts: [])
  loads, load = [], tfds.load  # One tfds.load for both splits: its info lines appear once.
  monkeypatch.setattr(tfds, 'load', lambda *args, **kwargs: loads.append(kwargs['split'])
                      or load(*args, **kwargs))
  with tfds.testing.mock_data(num_examples=64):
    data_lib.load_numpy.cache_clear()
    data, num_classes = data_lib.load(config.dataset)
  assert loads == [['train', 'test']]
  assert 2 <= num_classes <= 10  # mock labels are drawn from the 10 MNIST classes
  assert data['x_train'].shape[1:] == (28, 28, 1)
  assert len(data['y_train']) + len(data['y_val']) == 64
  np.testing.assert_allclose(np.asarray(data['x_train']).mean(), 0, atol=1e-3)
  specs = sweep.prepare(config)
  settings = space.random_trials(specs, config.seed, 2)
  configs = [space.with_overrides(config, s) for s in settings]
  from bnlab import population  # pylint: disable=import-outside-toplevel
  results = population.train_trials(configs, settings, [0, 1], data, num_classes, 0, 2)
  assert all(r.status == 'ok' for r in results) and all(r.setting == s
                                                        for r, s in zip(results, settings))
