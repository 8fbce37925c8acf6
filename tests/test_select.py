"""sweep.select and best_epoch: which epoch ranks a trial, against a brute-force reading.

records.with_best_epoch on random histories (first best epoch, none from a blow-up on), the
results.csv columns written and read back, best_config.py's epochs, and the bad value.
"""

import math
import os

import numpy as np
import pytest

from bnlab import checks
from bnlab import records
from bnlab import space
from bnlab.reporting import results
from bnlab.reporting import sweepfiles


def _record(trial, values, status=records.OK, diverged_epoch=None):
  history = [{'epoch': e + 1, 'train_loss': 1.0 - v, 'val_loss': 2.0 - v, 'val_accuracy': v}
             for e, v in enumerate(values)]
  last = history[-1]
  return records.TrialRecord(trial, {'optimizer.learning_rate': 0.01 * (trial + 1)}, status,
                              {'val_accuracy': last['val_accuracy'], 'val_loss': last['val_loss'],
                               'test_accuracy': 0.5, 'train_loss': last['train_loss']},
                              len(values), 1.0, diverged_epoch, history)


def test_the_best_epoch_is_the_first_with_the_best_finite_value():
  rng = np.random.default_rng(0)
  for _ in range(200):
    values = list(rng.integers(0, 4, size=int(rng.integers(1, 7))) / 4)
    if rng.random() < 0.2:
      values[int(rng.integers(len(values)))] = math.nan
    for metric, mode in (('val_accuracy', 'max'), ('val_loss', 'min')):
      record = _record(0, values)
      seen = [(row[metric], row['epoch']) for row in record.history if math.isfinite(row[metric])]
      epoch, row = records.best_epoch(record, metric, mode)
      if not seen:
        assert epoch is None
        continue
      best = max(v for v, _ in seen) if mode == 'max' else min(v for v, _ in seen)
      assert epoch == min(e for v, e in seen if v == best) and row[metric] == best


def test_a_diverged_trials_best_epoch_is_before_its_blow_up():
  record = _record(0, [0.5, 0.7, 0.9], records.DIVERGED, diverged_epoch=3)
  assert records.best_epoch(record, 'val_accuracy', 'max')[0] == 2


def test_select_best_ranks_by_the_best_epoch_and_last_by_the_last():
  early, late = _record(0, [0.9, 0.6]), _record(1, [0.7, 0.8])
  last = [records.with_best_epoch(r, 'val_accuracy', 'max') for r in (early, late)]
  best = [records.with_best_epoch(r, 'val_accuracy', 'max', 'best') for r in (early, late)]
  assert [r.trial for r in records.ranked(last, 'val_accuracy', 'max')] == [1, 0]
  assert [r.trial for r in records.ranked(best, 'val_accuracy', 'max')] == [0, 1]
  assert best[0].value('val_accuracy') == 0.9 and best[0].value('val_loss') == 2.0 - 0.9
  assert best[0].value('test_accuracy') == 0.5  # The kept parameters are the last epoch's.
  for r in last + best:
    assert r.value('best_epoch') == (1 if r.trial == 0 else 2)
    assert r.value('val_accuracy_best') == (0.9 if r.trial == 0 else 0.8)


def test_results_csv_has_best_epoch_read_back_and_best_config_trains_to_it(config, tmp_path):
  made = [records.with_best_epoch(_record(t, v), 'val_accuracy', 'max', 'best')
          for t, v in enumerate([[0.9, 0.6, 0.5], [0.7, 0.8, 0.75]])]
  cfg = space.with_overrides(config, {'sweep.select': 'best', 'train.epochs': 3,
                                      'sweep.space.model.widths': '',
                                      'sweep.space.model.bn_momentum': ''})
  specs = checks.check_config(cfg)
  (tmp_path / 'config.json').write_text(cfg.to_json_best_effort(indent=2))  # As sweep.run does.
  best = results.write_sweep(str(tmp_path), cfg, specs, made)
  assert best.trial == 0
  text = open(os.path.join(tmp_path, 'results.csv')).read().splitlines()
  header = text[0].split(',')
  assert header[-2:] == ['best_epoch', 'val_accuracy_best']
  assert [line.split(',')[-2:] for line in text[1:]] == [['1', '0.9'], ['2', '0.8']]
  loaded = sweepfiles.load(str(tmp_path)).results
  assert [r.value('best_epoch') for r in loaded] == [1.0, 2.0]
  source = open(os.path.join(tmp_path, 'best_config.py')).read()
  namespace = {}
  exec(compile(source, 'best_config.py', 'exec'), namespace)  # pylint: disable=exec-used
  assert namespace['get_config']().train.epochs == 1


def test_a_bad_select_is_one_line(config):
  with pytest.raises(records.ConfigError,
                     match="sweep.select='first' is not one of: last, best"):
    checks.check_config(space.with_overrides(config, {'sweep.select': 'first'}))
