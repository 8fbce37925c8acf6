"""sweep.ask='slot': TPE and GP asked one trial per freed slot, told every stopped trial.

Checked against the Optuna study itself (each record is the trial it asked, told in order), the
interleaving of asks and tells that makes the sampler learn per epoch, a run killed mid-way
against one never interrupted, a tampered checkpoint refused, and every bad value.
"""

import csv
import json
import os

import pytest

from bnlab import checks
from bnlab import records
from bnlab import space
from bnlab import sweep
from bnlab.strategies import asked
from bnlab.strategies import base
from bnlab.strategies import tpe
from tests import test_pruning
from tests import test_resume


def _config(config, **overrides):
  values = {'sweep.strategy': 'tpe', 'sweep.ask': 'slot', 'sweep.pruner': 'median',
            'sweep.tpe.batch_size': 3, 'sweep.num_trials': 9, 'train.epochs': 3,
            'sweep.space.model.widths': '', 'train.checkpoint_every': 1, **overrides}
  return space.with_overrides(config, values)


def _rows(workdir):
  with open(os.path.join(workdir, 'results.csv')) as f:
    return {int(r['trial']): {k: v for k, v in r.items() if k != 'seconds'}
            for r in csv.DictReader(f)}


def test_each_trial_is_asked_when_a_slot_frees_and_told_when_it_stops(
    config, tmp_path, monkeypatch):
  studies, real_study = [], tpe._study
  monkeypatch.setattr(tpe, '_study', lambda c: studies.append(real_study(c)) or studies[-1])
  sizes = test_pruning._count_member_epochs(monkeypatch)
  done = sweep.run(_config(config), str(tmp_path / 'run'))
  (study,) = studies
  assert [r.trial for r in done] == list(range(9))
  assert max(sizes) == 3  # Three slots, refilled: never a bigger program.
  optuna_trials = study.get_trials(deepcopy=False)
  assert len(optuna_trials) == 9  # One ask per trial, nothing asked twice.
  by_number = {t.number: t for t in optuna_trials}
  for record in done:
    seen = by_number[record.extras['ask_seq'] - sum(
        1 for r in done if r.extras['tell_seq'] < record.extras['ask_seq'])]
    static = asked.static_specs(space.parse_space(_config(config).sweep.space))
    assert set(seen.params) == set(record.setting) - set(static)  # Only what was asked.
    lr = seen.params['optimizer.learning_rate']
    assert lr == record.setting['optimizer.learning_rate']
    assert record.extras['tell_seq'] > record.extras['ask_seq']
    finite = [row['val_accuracy'] for row in record.history]
    assert [seen.intermediate_values[e] for e in sorted(seen.intermediate_values)] == finite
  statuses = {r.status for r in done}
  assert records.PRUNED in statuses
  # The sampler learns as trials stop: some trial is asked after a tell while trials asked
  # before that tell still run (a batch would wait for all of them).
  assert any(a.extras['ask_seq'] < b.extras['tell_seq'] < a.extras['tell_seq']
             < c.extras['ask_seq'] for a in done for b in done for c in done)
  assert sum(sizes) < 9 * 3  # Pruned trials' epochs went to new trials, not to waiting.


def test_a_killed_slot_sweep_resumes_to_the_uninterrupted_results(config, tmp_path, monkeypatch):
  sweep.run(_config(config), str(tmp_path / 'whole'))
  with monkeypatch.context() as patch:
    test_resume._count_epochs(patch, fail_at=4)
    with pytest.raises(test_resume.Interrupt):
      sweep.run(_config(config), str(tmp_path / 'killed'))
  sweep.run(_config(config), str(tmp_path / 'killed'))
  assert _rows(str(tmp_path / 'killed')) == _rows(str(tmp_path / 'whole'))


def test_a_resume_whose_sampler_asks_otherwise_is_refused(config, digits):
  """The replay checks each ask against what the checkpoint says was asked, in order."""
  cfg = _config(config)
  context = base.Context(cfg, space.parse_space(cfg.sweep.space), digits, 10, 4)

  def fresh():
    return asked.Asker(context, tpe._study(cfg), tpe._ask, [{}], [None] * 4)
  first = fresh()
  first.ask(0, [0, 1])
  running = first.running([0, 1])
  again = fresh()
  again.replay(0, {}, running)  # The same seed asks the same: accepted.
  assert again.settings[:2] == first.settings[:2]
  changed = {**running, '1': [1, {**running['1'][1], 'optimizer.learning_rate': 0.5}]}
  with pytest.raises(records.ConfigError, match='on resume the sampler asked'):
    fresh().replay(0, {}, changed)
  with pytest.raises(records.ConfigError, match='misses ask or tell 0'):
    fresh().replay(0, {}, {'1': running['1']})


def test_buckets_split_the_trials_and_the_sampler_sees_only_dynamic_fields(config):
  cfg = _config(config, **{'sweep.space.model.widths': 'choice((16, 16), (8,))',
                           'sweep.space.train.batch_size': 'int_uniform(31, 32)'})
  specs = space.parse_space(cfg.sweep.space)
  combos = asked.combinations(specs)
  assert len(combos) == 4
  assert {json.dumps(c, sort_keys=True) for c in combos} == {
      json.dumps({'model.widths': w, 'train.batch_size': b}, sort_keys=True)
      for w in [(16, 16), (8,)] for b in (31, 32)}
  checks.check_config(cfg)  # 9 trials for 4 combinations: accepted.


@pytest.mark.parametrize('overrides, message', [
    ({'sweep.ask': 'async'}, "sweep.ask='async' is not one of: batch, slot"),
    ({'sweep.space.model.norm': "choice('batch', 'layer') if optimizer.name == adam"},
     "sweep.space.model.norm: with sweep.ask='slot' a field that shapes the program takes no"),
    ({'sweep.strategy': 'random'},
     "sweep.ask='slot': sweep.strategy='random' asks no sampler; slot asks work with tpe, gp"),
    ({'sweep.pruner': 'none', 'sweep.seeds': 2}, "sweep.seeds=2: sweep.strategy='tpe' takes"),
    ({'sweep.space.train.batch_size': 'log_uniform(16, 64)'},
     "sweep.space.train.batch_size=log_uniform(...): with sweep.ask='slot' a field that shapes"),
    ({'sweep.num_trials': 1, 'sweep.space.model.widths': 'choice((16,), (8,))'},
     "sweep.num_trials=1: sweep.ask='slot' trains each of the 2 combinations of model.widths"),
])
def test_bad_ask_fields_are_one_line(config, overrides, message):
  with pytest.raises(records.ConfigError) as e:
    checks.check_config(_config(config, **overrides))
  assert message in str(e.value)
  assert '\n' not in str(e.value)


def test_a_condition_on_a_program_shaping_field_reads_the_buckets_value(config, digits):
  """bn_momentum only where model.norm == batch: never asked in the layer-norm bucket."""
  cfg = _config(config, **{
      'sweep.space.model.norm': "choice('batch', 'layer')",
      'sweep.space.model.bn_momentum': 'one_minus_log_uniform(0.5, 0.99) if model.norm == batch'})
  specs = checks.check_config(cfg)
  statics = asked.combinations(specs)
  assert statics == [{'model.norm': 'batch'}, {'model.norm': 'layer'}]
  asker = asked.Asker(base.Context(cfg, specs, digits, 10, 4), tpe._study(cfg), tpe._ask,
                      statics, [None] * 8)
  asker.ask(0, [0, 1, 2, 3])
  asker.ask(1, [4, 5, 6, 7])
  for i, setting in enumerate(asker.settings):
    assert setting['model.norm'] == ('batch' if i < 4 else 'layer')
    assert ('model.bn_momentum' in setting) == (i < 4)
    assert 'optimizer.learning_rate' in setting

