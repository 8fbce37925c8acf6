"""Divergence isolation: a member that blows up is frozen and reported, the others never notice."""

import csv
import dataclasses
import json
import math
import os
import subprocess
import sys

from bnlab import space
from bnlab import sweep
from tests.conftest import ROOT
from tests.conftest import train_trials

HEALTHY = (1e-2, 3e-2, 1e-3)


def _sweep(config, digits, second_lr):
  data, num_classes = digits
  rates = [HEALTHY[0], second_lr, HEALTHY[1], HEALTHY[2]]
  configs = [space.with_overrides(config, {'optimizer.learning_rate': lr}) for lr in rates]
  return train_trials(configs, [0, 1, 2, 3], data, num_classes, 0, max_parallel=4)


def _without_time(record):
  return dataclasses.replace(record, seconds=0.0)


def test_healthy_members_get_identical_results_with_or_without_a_divergent_one(config, digits):
  config.train.epochs = 3
  healthy = _sweep(config, digits, second_lr=5e-2)
  with_divergent = _sweep(config, digits, second_lr=1e9)
  assert healthy[1].status == 'ok'
  diverged = with_divergent[1]
  assert diverged.status == 'diverged' and diverged.diverged_epoch == 1
  assert all(math.isnan(diverged.value(m)) for m in ('val_accuracy', 'val_loss', 'test_accuracy'))
  for k in (0, 2, 3):
    assert _without_time(with_divergent[k]) == _without_time(healthy[k])  # Bit for bit.


def test_a_divergent_trial_is_reported_with_its_epoch_and_never_as_a_number(config, tmp_path):
  config.sweep.num_trials = 4
  config.sweep.space.optimizer.learning_rate = 'grid(1e-2, 1e30)'
  config.sweep.space.model.bn_momentum = ''
  config.sweep.space.model.widths = 'grid((16, 16), (8,))'
  config.sweep.strategy = 'grid'
  results = sweep.run(config, str(tmp_path))
  with open(tmp_path / 'results.csv') as f:
    rows = list(csv.DictReader(f))
  assert [r['status'] for r in rows] == [r.status for r in results]
  assert [r['status'] for r in rows] == ['ok', 'diverged', 'ok', 'diverged']
  for row in rows:
    if row['status'] == 'diverged':
      assert row['diverged_epoch'] == '1'
      assert row['val_accuracy'] == row['val_loss'] == row['test_accuracy'] == ''
    else:
      assert row['diverged_epoch'] == '' and 0 < float(row['val_accuracy']) <= 1
  with open(tmp_path / 'best.json') as f:
    assert json.load(f)['status'] == 'ok'
  with open(tmp_path / 'history.jsonl') as f:
    text = f.read()
  assert 'NaN' not in text and 'Infinity' not in text  # Non-finite values are written as null.


def test_a_sweep_where_every_trial_diverges_says_so_and_exits_1(data_dir, tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'launch.py'), '--config=configs/test.py',
       f'--workdir={tmp_path}', f'--config.dataset.data_dir={data_dir}',
       '--config.train.epochs=1', '--config.sweep.num_trials=2',
       '--config.sweep.space.model.widths=', '--config.sweep.space.model.bn_momentum=',
       '--config.sweep.space.optimizer.learning_rate=log_uniform(1e29, 1e30)'],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 1, result.stderr[-3000:]
  assert result.stderr.strip().splitlines()[-1] == (
      'error: every one of the 2 trials diverged (non-finite loss): no best setting; '
      'try lower learning rates')
  assert not os.path.exists(tmp_path / 'best.json')
  with open(tmp_path / 'results.csv') as f:
    assert [r['status'] for r in csv.DictReader(f)] == ['diverged', 'diverged']
