"""The workdir files written from trial records (bnlab.reporting.results).

The expected texts below are what the writer before the records (bnlab/report.py, which took
result dicts) wrote for the same four trials, with three later changes (issue #21): results.csv
adds the running-average columns where a trial has them, history.jsonl writes a tuple setting
(model.widths) as results.csv's text '(16, 16)' rather than a list, and seeds.csv adds each
seed's value. The round trip tests read the files back with sweepfiles.load and write them again.
"""

import importlib.util
import json
import math
import os

import pytest

from bnlab import records
from bnlab import space
from bnlab.records import TrialRecord
from bnlab.reporting import figures
from bnlab.reporting import results
from bnlab.reporting import sweepfiles
from configs import test as test_config

NAN = float('nan')
LR, WIDTHS, BN = 'optimizer.learning_rate', 'model.widths', 'model.bn_momentum'
FIELDS = [BN, WIDTHS, LR]  # The specs' order (sorted), not the settings' (lr first).


def history(epochs, lr=None, nan_at=None):
  """Per-epoch rows as the population loop makes them; `lr`: PBT's schedule column."""
  rows = []
  for e in range(epochs):
    row = {'epoch': e + 1, 'train_loss': 1.0 / (e + 3), 'val_accuracy': 0.3 + 0.1 * e,
           'val_loss': NAN if e == nan_at else 0.9 - 0.1 * e}
    if lr is not None:
      row[LR] = lr[e]
    rows.append(row)
  return rows


def trials(pbt=False, seeds=1):
  """Four trials: ok (with running-average metrics), diverged, pruned, ok (the best)."""
  lr = lambda *v: list(v) if pbt else None
  made = [
      TrialRecord(0, {LR: 0.001, WIDTHS: (16, 16), BN: 0.9}, records.OK,
                  {'val_accuracy': 0.5, 'val_loss': 0.75, 'test_accuracy': 0.625,
                   'train_loss': 0.25, 'val_accuracy_running': 0.375, 'val_loss_running': 1.5},
                  2, 0.123456789, None, history(2, lr(0.001, 0.001), nan_at=1)),
      TrialRecord(1, {LR: 0.09, WIDTHS: (8,), BN: 0.6}, records.DIVERGED,
                  dict.fromkeys(records.METRICS, NAN), 2, 0.123456789, 1,
                  history(2, lr(0.09, 0.09), nan_at=0)),
      TrialRecord(2, {LR: 0.0123456789, WIDTHS: (8,), BN: 0.95}, records.PRUNED,
                  {'val_accuracy': 0.25, 'val_loss': 1.25, 'test_accuracy': 0.3,
                   'train_loss': 1.0}, 1, 0.123456789, None, history(1, lr(0.0123456789))),
      TrialRecord(3, {LR: 0.03 * 1.2, WIDTHS: (16, 16), BN: 0.75}, records.OK,
                  {'val_accuracy': 0.875, 'val_loss': 0.5, 'test_accuracy': 0.8125,
                   'train_loss': 0.125}, 3, 0.123456789, None,
                  history(3, lr(0.03, 0.03 * 0.8, 0.03 * 1.2)))]
  for r in made if seeds > 1 else ():
    for m in records.METRICS:
      finite = math.isfinite(r.value(m))
      r.metrics[m + '_std'], r.metrics[m + '_ci95'] = (0.015625, 0.0390625) if finite else (NAN,
                                                                                              NAN)
    r.extras.update(seeds=seeds, val_accuracy_per_seed=[0.5, NAN, 0.25])
  return made


RESULTS_CSV = '\r\n'.join([
    'trial,model.bn_momentum,model.widths,optimizer.learning_rate,status,val_accuracy,val_loss,'
    'test_accuracy,train_loss,epochs,seconds,diverged_epoch,val_loss_running,val_accuracy_running',
    '0,0.9,"(16, 16)",0.001,ok,0.5,0.75,0.625,0.25,2,0.123456789,,1.5,0.375',
    '1,0.6,"(8,)",0.09,diverged,,,,,2,0.123456789,1,,',
    '2,0.95,"(8,)",0.0123456789,pruned,0.25,1.25,0.3,1.0,1,0.123456789,,,',
    '3,0.75,"(16, 16)",0.036,ok,0.875,0.5,0.8125,0.125,3,0.123456789,,,', ''])


def history_line(trial, lr, widths, bn, epoch, train_loss, val_accuracy, val_loss):
  return (f'{{"trial": {trial}, "optimizer.learning_rate": {lr}, "model.widths": {widths}, '
          f'"model.bn_momentum": {bn}, "epoch": {epoch}, "train_loss": {train_loss}, '
          f'"val_accuracy": {val_accuracy}, "val_loss": {val_loss}}}')


HISTORY_JSONL = '\n'.join([
    history_line(0, 0.001, '"(16, 16)"', 0.9, 1, 0.3333333333333333, 0.3, 0.9),
    history_line(0, 0.001, '"(16, 16)"', 0.9, 2, 0.25, 0.4, 'null'),
    history_line(1, 0.09, '"(8,)"', 0.6, 1, 0.3333333333333333, 0.3, 'null'),
    history_line(1, 0.09, '"(8,)"', 0.6, 2, 0.25, 0.4, 0.8),
    history_line(2, 0.0123456789, '"(8,)"', 0.95, 1, 0.3333333333333333, 0.3, 0.9),
    history_line(3, 0.036, '"(16, 16)"', 0.75, 1, 0.3333333333333333, 0.3, 0.9),
    history_line(3, 0.036, '"(16, 16)"', 0.75, 2, 0.25, 0.4, 0.8),
    history_line(3, 0.036, '"(16, 16)"', 0.75, 3, 0.2, 0.5, 0.7), ''])

SEEDS_CSV = '\r\n'.join([
    'trial,model.bn_momentum,model.widths,optimizer.learning_rate,status,seeds,'
    'val_accuracy_mean,val_accuracy_std,val_accuracy_ci95,val_loss_mean,val_loss_std,'
    'val_loss_ci95,test_accuracy_mean,test_accuracy_std,test_accuracy_ci95,train_loss_mean,'
    'train_loss_std,train_loss_ci95,val_accuracy_seed0,val_accuracy_seed1,val_accuracy_seed2',
    '0,0.9,"(16, 16)",0.001,ok,3,0.5,0.015625,0.0390625,0.75,0.015625,0.0390625,0.625,0.015625,'
    '0.0390625,0.25,0.015625,0.0390625,0.5,,0.25',
    '1,0.6,"(8,)",0.09,diverged,3,,,,,,,,,,,,,0.5,,0.25',
    '2,0.95,"(8,)",0.0123456789,pruned,3,0.25,0.015625,0.0390625,1.25,0.015625,0.0390625,0.3,'
    '0.015625,0.0390625,1.0,0.015625,0.0390625,0.5,,0.25',
    '3,0.75,"(16, 16)",0.036,ok,3,0.875,0.015625,0.0390625,0.5,0.015625,0.0390625,0.8125,'
    '0.015625,0.0390625,0.125,0.015625,0.0390625,0.5,,0.25', ''])

LEADERBOARD = '\n'.join([
    'rank  trial  val_loss  val_accuracy  test_accuracy  model.bn_momentum  model.widths  '
    'optimizer.learning_rate',
    '   1      3       0.5         0.875         0.8125               0.75       (16,16)  '
    '                  0.036',
    '   2      0      0.75           0.5          0.625                0.9       (16,16)  '
    '                  0.001'])


def test_results_history_and_seeds_are_the_bytes_the_dict_writer_wrote():
  assert results.results_csv(trials(), FIELDS) == RESULTS_CSV
  assert results.history_jsonl(trials()) == HISTORY_JSONL
  assert results.seeds_csv(trials(seeds=3), FIELDS) == SEEDS_CSV
  # PBT: each epoch's row carries the value it trained with, in the setting's place.
  pbt = results.history_jsonl(trials(pbt=True)).splitlines()
  assert pbt[:5] == HISTORY_JSONL.splitlines()[:5]
  assert [json.loads(line)[LR] for line in pbt[5:]] == [0.03, 0.024, 0.036]
  assert [line.replace('0.024', '0.036').replace('0.03,', '0.036,') for line in pbt[5:]] == (
      HISTORY_JSONL.splitlines()[5:])


def test_the_terminal_leaderboard_is_the_old_text():
  assert results.leaderboard(trials(), FIELDS, 'val_loss', 'min', top=2) == LEADERBOARD
  # Diverged trials never rank; the rest best first.
  ranked = results.leaderboard(trials(), FIELDS, 'val_accuracy', 'max').splitlines()
  assert [line.split()[1] for line in ranked[1:]] == ['3', '0', '2']


def opened_workdir(workdir):
  """A workdir as sweep.run leaves it for the writer: config.json written; and its config."""
  config = test_config.get_config()
  os.makedirs(workdir)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2))
  return config


def write_workdir(workdir, made, seeds=False):
  """A finished sweep's workdir holding `made`, written by the writer's functions."""
  config = opened_workdir(workdir)
  with open(os.path.join(workdir, 'results.csv'), 'w', newline='') as f:
    f.write(results.results_csv(made, FIELDS))
  with open(os.path.join(workdir, 'history.jsonl'), 'w') as f:
    f.write(results.history_jsonl(made))
  if seeds:
    with open(os.path.join(workdir, 'seeds.csv'), 'w', newline='') as f:
      f.write(results.seeds_csv(made, FIELDS))
  return config


def same(a, b):
  """Equal values, NaN equal to NaN."""
  if isinstance(a, float) and isinstance(b, float):
    return a == b or (math.isnan(a) and math.isnan(b))
  if isinstance(a, dict):
    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
  if isinstance(a, (list, tuple)):
    return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
  return a == b


@pytest.mark.parametrize('pbt', [False, True])
def test_a_loaded_workdir_writes_its_files_again_byte_for_byte(tmp_path, pbt):
  made = trials(pbt=pbt, seeds=3)
  write_workdir(str(tmp_path / 'w'), made, seeds=True)
  loaded = sweepfiles.load(str(tmp_path / 'w'))
  assert loaded.finished and list(loaded.specs) == FIELDS
  assert results.results_csv(loaded.results, FIELDS) == results.results_csv(made, FIELDS)
  assert results.history_jsonl(loaded.results) == results.history_jsonl(made)
  assert results.seeds_csv(loaded.results, FIELDS) == results.seeds_csv(made, FIELDS)
  for got, want in zip(loaded.results, made):
    assert got.setting == want.setting and list(got.setting) == list(want.setting)
    assert (got.trial, got.status, got.epochs, got.seconds, got.diverged_epoch) == (
        want.trial, want.status, want.epochs, want.seconds, want.diverged_epoch)
    # The running-average metrics come back from results.csv where the trial had them.
    assert same(got.metrics, want.metrics)
    assert got.extras['seeds'] == 3
    assert same(got.extras['val_accuracy_per_seed'], want.extras['val_accuracy_per_seed'])
    assert same([sorted(row.items()) for row in got.history],
                [sorted(row.items()) for row in want.history])
  # The schedule columns come back only where the hyperparameters changed during training.
  assert figures.scheduled_fields(loaded.results, loaded.specs) == ([LR] if pbt else [])


def test_write_sweep_writes_every_file_and_returns_the_best(tmp_path):
  workdir = str(tmp_path / 'w')
  config = opened_workdir(workdir)
  specs = space.parse_space(config.sweep.space)
  assert list(specs) == FIELDS
  best = results.write_sweep(workdir, config, specs, trials(pbt=True, seeds=3))
  assert best.trial == 3
  with open(os.path.join(workdir, 'results.csv'), newline='') as f:
    assert f.read() == RESULTS_CSV
  with open(os.path.join(workdir, 'seeds.csv'), newline='') as f:
    assert f.read() == SEEDS_CSV
  with open(os.path.join(workdir, 'best.json')) as f:
    summary = json.load(f)
  assert summary['trial'] == 3 and summary['val_accuracy'] == 0.875 and summary['seeds'] == 3
  assert summary['val_accuracy_per_seed'] == [0.5, None, 0.25]  # Valid JSON: NaN as null.
  assert summary['setting'] == {LR: 0.036, WIDTHS: [16, 16], BN: 0.75}
  spec = importlib.util.spec_from_file_location('best', os.path.join(workdir, 'best_config.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  alone = module.get_config()
  assert (alone.optimizer.learning_rate, tuple(alone.model.widths), alone.model.bn_momentum) == (
      0.036, (16, 16), 0.75)
  assert alone.sweep.num_trials == 1 and not space.parse_space(alone.sweep.space)
  for name in ('report.html', 'report.md', 'history.jsonl', 'plots/pbt_schedules.png',
               'plots/curves.png'):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name


def test_write_sweep_writes_no_schedules_or_seeds_where_the_records_have_none(tmp_path):
  workdir = str(tmp_path / 'w')
  config = opened_workdir(workdir)
  made = trials()
  for r in made:
    r.status, r.diverged_epoch = records.DIVERGED, 1
  assert results.write_sweep(workdir, config, space.parse_space(config.sweep.space), made) is None
  written = set(os.listdir(workdir)) | {f'plots/{p}' for p in os.listdir(f'{workdir}/plots')}
  assert {'results.csv', 'history.jsonl', 'report.html'} <= written
  assert not written & {'seeds.csv', 'plots/pbt_schedules.png', 'best.json', 'best_config.py'}
