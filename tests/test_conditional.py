"""Conditional specs (`... if FIELD == VALUE`, `... if FIELD in (V1, V2)`): parsing, the bad-input
lines, and for every strategy that samples a space: an inactive field is never sampled, the
trial's config keeps its base value there, and no other field's value moves."""
# test_strategies' fake Context and objective stand in for training, as in test_gp.
# pylint: disable=protected-access

import ml_collections
import pytest

from bnlab import checks
from bnlab import prechecks
from bnlab import records
from bnlab import space
from bnlab.reporting import results as results_files
from bnlab.strategies import base
from bnlab.strategies import coarse_to_fine
from bnlab.strategies import gp
from bnlab.strategies import sampling
from bnlab.strategies import tpe
from tests import test_strategies

MOMENTUM = 'one_minus_log_uniform(0.8, 0.99) if optimizer.name == momentum'
SPACE = {'optimizer.name': "choice('sgd', 'momentum', 'adam')",
         'optimizer.momentum': MOMENTUM,
         'optimizer.learning_rate': 'log_uniform(1e-3, 1e-1)'}


def _config(config, fields=None, **sweep):
  """`config` with only `fields` swept (SPACE by default) and sweep.* set from `sweep`."""
  for field in space.flatten(config.sweep.space):
    section, key = field.split('.')
    config.sweep.space[section][key] = ''
  for field, text in (SPACE if fields is None else fields).items():
    section, key = field.split('.')
    config.sweep.space[section][key] = text
  for key, value in sweep.items():
    config.sweep[key] = value
  return config


def _specs(config):
  return prechecks.bind_conditions(space.parse_space(config.sweep.space), config)


def _unconditional(specs):
  return {f: space.Spec(s.kind, s.args) for f, s in specs.items()}


def _check_active(settings):
  """momentum is in a setting exactly where its condition holds, and inside its range."""
  assert settings
  for s in settings:
    assert ('optimizer.momentum' in s) == (s['optimizer.name'] == 'momentum'), s
    assert 0.8 <= s.get('optimizer.momentum', 0.9) <= 0.99


def test_a_condition_is_parsed_off_the_spec():
  spec = space.parse(MOMENTUM, 'optimizer.momentum')
  assert (spec.kind, spec.args) == ('one_minus_log_uniform', (0.8, 0.99))
  assert (spec.condition.field, spec.condition.values) == ('optimizer.name', ('momentum',))
  listed = space.parse("choice('if', 'b)') if train.batch_size in (32, 'x', momentum)", 'f')
  assert listed.args == ('if', 'b)')  # An `if` inside a string is the spec's own.
  assert listed.condition.values == (32, 'x', 'momentum')
  assert space.parse('uniform(0, 1)') == space.Spec('uniform', (0, 1))


@pytest.mark.parametrize('strategy', ['random', 'quasirandom'])
def test_random_and_quasirandom_leave_inactive_fields_out_and_move_no_other(config, strategy):
  specs = _specs(_config(config))
  make = getattr(sampling, strategy)
  settings, plain = make(specs, 3, 64).take(range(64)), make(_unconditional(specs), 3, 64)[:]
  _check_active(settings)
  assert {s['optimizer.name'] for s in settings} == {'sgd', 'momentum', 'adam'}
  # Each setting is the unconditional one, less the inactive field: nothing shifted.
  assert settings == [space.active(specs, s) for s in plain]
  assert make(specs, 3, 10)[:] == settings[:10]  # Trial i depends only on (seed, i).
  if strategy == 'random':
    assert space.random_trials(specs, 3, 64) == settings


def test_the_trial_config_keeps_the_base_value_where_inactive(config):
  specs = _specs(_config(config))
  context = base.Context(config, specs, data={}, num_classes=0, max_parallel=0)
  for setting in sampling.random(specs, 0, 30):
    trial = context.trial_config(setting)
    momentum = setting.get('optimizer.momentum', config.optimizer.momentum)
    assert (trial.optimizer.name, trial.optimizer.momentum) == (setting['optimizer.name'],
                                                                momentum)


def test_a_chained_condition_reads_the_base_value_of_an_inactive_parent(config):
  fields = {'optimizer.name': "choice('sgd', 'momentum')",
            'optimizer.momentum': 'choice(0.5, 0.9) if optimizer.name == momentum',
            'train.batch_size': 'choice(16, 64) if optimizer.momentum == 0.5'}
  specs = _specs(_config(config, fields))
  assert config.optimizer.momentum == 0.9  # What batch_size's condition reads under sgd.
  assert space.condition_order(specs) == ['optimizer.name', 'optimizer.momentum',
                                          'train.batch_size']
  for s in sampling.random(specs, 0, 40):
    assert ('train.batch_size' in s) == (s.get('optimizer.momentum') == 0.5), s


def test_grid_multiplies_a_conditional_field_only_where_it_is_active(config):
  fields = {'optimizer.name': "grid('sgd', 'momentum')",
            'optimizer.momentum': 'grid(0.8, 0.9) if optimizer.name == momentum',
            'optimizer.learning_rate': 'grid(0.1, 0.01)'}
  settings = list(sampling.grid(_specs(_config(config, fields))))
  expected = ([{'optimizer.learning_rate': lr, 'optimizer.name': 'sgd'} for lr in (0.1, 0.01)]
              + [{'optimizer.learning_rate': lr, 'optimizer.momentum': m,
                  'optimizer.name': 'momentum'} for lr in (0.1, 0.01) for m in (0.8, 0.9)])
  assert sorted(map(repr, settings)) == sorted(map(repr, expected))  # 6, not the product's 8.


def _trial_params_match(study, settings):
  """Optuna saw exactly the active fields of each trial (define-by-run)."""
  told = [t for t in study.trials if t.state.name == 'COMPLETE']
  assert len(told) == len(settings)
  for trial, setting in zip(told, settings):
    assert set(trial.params) == set(setting)


def _objective(setting):
  """Best at lr 1e-2, better with momentum near 0.9 when it is used."""
  return test_strategies._near_1e2(setting) - abs(setting.get('optimizer.momentum', 0.9) - 0.9)


@pytest.mark.parametrize('strategy', ['tpe', 'gp'])
def test_tpe_and_gp_ask_define_by_run(config, monkeypatch, strategy):
  monkeypatch.setattr(gp, 'STARTUP_TRIALS', 3)  # The GP models after 3 trials, not 10.
  module = {'tpe': tpe, 'gp': gp}[strategy]
  # gp: 3 random asks, then 3 asked of the fitted GP (each fit costs seconds).
  _config(config, strategy=strategy, num_trials=6 if strategy == 'gp' else 24)
  specs, calls = _specs(config), []
  study = module._study(config)
  done = tpe.run_batches(test_strategies._FakeContext(config, specs, calls, _objective), study,
                         module._ask, 3)
  settings = [r.setting for r in done]
  _check_active(settings)
  _trial_params_match(study, settings)
  assert any('optimizer.momentum' in s for s in settings)


def test_unconditional_spaces_are_asked_as_before():
  """sampling.ask without conditions is the one ask of every distribution tpe made before."""
  specs = test_strategies.SPECS
  study, before = (tpe._study(ml_collections.ConfigDict(
      {'seed': 5, 'sweep': {'mode': 'max', 'objectives': ''}}))
                   for _ in range(2))
  distributions = {f: space.optuna_distribution(s) for f, s in specs.items()}
  for _ in range(5):
    _, setting = sampling.ask(study, specs)
    trial = before.ask(distributions)
    assert setting == {f: space.from_optuna(specs[f], trial.params[f]) for f in specs}


def test_coarse_to_fine_never_samples_an_inactive_field(config):
  _config(config, strategy='coarse_to_fine', num_trials=30)
  config.sweep.coarse_to_fine.rounds = 3
  specs = _specs(config)
  done = coarse_to_fine.run(test_strategies._FakeContext(config, specs, [], _objective))
  _check_active([r.setting for r in done])
  # A field no top trial used keeps its whole range in the next box.
  sgd = [records.TrialRecord(i, {'optimizer.name': 'sgd', 'optimizer.learning_rate': lr}, 'ok',
                             {'val_accuracy': float(i)}, epochs=1)
         for i, lr in enumerate((1e-3, 1e-2, 1e-1))]
  lo, hi = coarse_to_fine.top_box(specs, sgd, config)
  j = list(specs).index('optimizer.momentum')
  assert (lo[j], hi[j]) == (0.0, 1.0)


def test_results_csv_leaves_an_inactive_cell_empty():
  made = [records.TrialRecord(0, {'optimizer.name': 'sgd'}, 'ok', {'val_accuracy': 0.5}, 1),
          records.TrialRecord(1, {'optimizer.name': 'momentum', 'optimizer.momentum': 0.9}, 'ok',
                              {'val_accuracy': 0.6}, 1)]
  text = results_files.results_csv(made, ['optimizer.momentum', 'optimizer.name'])
  rows = [line.split(',') for line in text.splitlines()[1:]]
  assert [row[1:3] for row in rows] == [['', 'sgd'], ['0.9', 'momentum']]


def test_a_conditional_sweep_trains_reports_and_reads_back(config, tmp_path):
  """End to end: an inactive field keeps its config value, its results.csv cell is empty, and
  the report (static and interactive) reads the workdir back."""
  from bnlab import sweep  # pylint: disable=import-outside-toplevel
  from bnlab.reporting import sweepfiles  # pylint: disable=import-outside-toplevel
  cfg = space.with_overrides(config, {
      'sweep.num_trials': 6, 'train.epochs': 1, 'sweep.space.model.widths': '',
      'sweep.space.optimizer.name': "choice('sgd', 'momentum')",
      'sweep.space.optimizer.momentum': 'uniform(0.5, 0.95) if optimizer.name == momentum'})
  done = sweep.run(cfg, str(tmp_path))
  names = {r.trial: r.setting['optimizer.name'] for r in done}
  assert set(names.values()) == {'sgd', 'momentum'}
  for r in done:
    assert ('optimizer.momentum' in r.setting) == (names[r.trial] == 'momentum')
  loaded = {r.trial: r.setting for r in sweepfiles.load(str(tmp_path)).results}
  assert loaded == {r.trial: r.setting for r in done}
  assert (tmp_path / 'report.html').exists() and (tmp_path / 'explore.html').exists()


@pytest.mark.parametrize('fields,message', [
    ({'optimizer.momentum': 'uniform(0, 1) if optimizer.name momentum'}, 'malformed condition'),
    ({'optimizer.momentum': 'uniform(0, 1) if optimizer.name > 3'}, 'malformed condition'),
    ({'optimizer.momentum': 'uniform(0, 1) if'}, 'malformed condition'),
    ({'optimizer.momentum': 'uniform(0, 1) if optimizer.name in momentum'}, 'parenthesised'),
    ({'optimizer.momentum': 'uniform(0, 1) if optimizer.name == f(1)'}, 'literals or bare'),
    ({'optimizer.momentum': 'uniform(0, 1) if optimizer.nam == adam'}, 'not a config field'),
    ({'optimizer.momentum': 'uniform(0, 1) if optimizer == adam'}, 'not a config field'),
    ({'optimizer.momentum': 'uniform(0, 1) if optimizer.momentum == 0.5'}, 'circular'),
    ({'optimizer.momentum': 'choice(0.5, 0.9) if optimizer.b1 == 0.9',
      'optimizer.b1': 'choice(0.8, 0.9) if optimizer.momentum == 0.9'}, 'circular'),
    ({'optimizer.momentum': 'uniform(0, 1) if optimizer.name == momentm'}, 'not one of: sgd'),
    ({'optimizer.name': "choice('sgd', 'adam')",
      'optimizer.momentum': 'uniform(0, 1) if optimizer.name == momentum'}, 'never holds'),
])
def test_bad_conditions_are_one_line_naming_the_field(config, fields, message):
  _config(config, fields)
  with pytest.raises(records.ConfigError, match=message) as error:
    prechecks.check_config(config)
  text = str(error.value)
  assert '\n' not in text and 'sweep.space.optimizer.' in text


def test_pbt_refuses_a_condition_on_a_field_it_explores(config):
  cfg = space.with_overrides(config, {
      'sweep.strategy': 'pbt', 'sweep.space.model.bn_momentum':
      'one_minus_log_uniform(0.5, 0.99) if model.norm == batch'})
  with pytest.raises(records.ConfigError, match="sweep.space.model.bn_momentum: sweep.strategy="
                     "'pbt' explores it in every member, so it takes no `if model.norm == batch`"):
    checks.check_config(cfg)
