"""Spec parsing and sampling: the right scale, prefix-stable trials, the grid product.
(Conditional specs: tests/test_conditional.py.)"""

import math

import ml_collections
import numpy as np
import pytest

from bnlab import space
from bnlab.strategies import sampling


def _values(text, n=20000, seed=0):
  spec = space.parse(text)
  return np.array([spec.value(u) for u in np.random.default_rng(seed).random(n)])


def test_log_uniform_puts_equal_mass_per_decade():
  x = _values('log_uniform(1e-4, 1e-1)')
  counts = np.histogram(np.log10(x), bins=[-4, -3, -2, -1])[0] / len(x)
  np.testing.assert_allclose(counts, 1 / 3, atol=0.015)
  assert x.min() >= 1e-4 and x.max() <= 1e-1


def test_one_minus_log_uniform_puts_half_the_mass_above_0_99():
  x = _values('one_minus_log_uniform(0.9, 0.999)')
  assert abs(np.mean(x > 0.99) - 0.5) < 0.015
  assert x.min() >= 0.9 and x.max() <= 0.999


def test_uniform_int_uniform_and_choice_cover_their_range():
  assert abs(_values('uniform(2, 4)').mean() - 3) < 0.02
  ints = _values('int_uniform(1, 3)')
  np.testing.assert_allclose(np.bincount(ints.astype(int))[1:] / len(ints), 1 / 3, atol=0.015)
  spec = space.parse("choice('relu', 'tanh', (1, 2))")
  assert [spec.value(u) for u in (0.1, 0.5, 0.9)] == ['relu', 'tanh', (1, 2)]


@pytest.mark.parametrize('text', ['log_uniform(1e-3, 1)', 'one_minus_log_uniform(0.5, 0.99)',
                                  'uniform(-1, 1)', 'int_uniform(2, 9)'])
def test_quantile_inverts_value(text):
  spec = space.parse(text)
  for u in (0.05, 0.5, 0.95):
    value = spec.value(u)
    assert math.isclose(spec.value(spec.quantile(value)), value, rel_tol=1e-9)


def _space(**fields):
  space_config = ml_collections.ConfigDict({'optimizer': {'learning_rate': '', 'b2': ''},
                                            'model': {'widths': ''}})
  for field, text in fields.items():
    section, key = field.split('__')
    space_config[section][key] = text
  return space_config


def test_trial_keeps_its_setting_when_num_trials_grows_or_fields_are_added():
  specs = space.parse_space(_space(optimizer__learning_rate='log_uniform(1e-4, 1e-1)'))
  small = space.random_trials(specs, seed=3, num_trials=5)
  large = space.random_trials(specs, seed=3, num_trials=50)
  assert large[:5] == small
  wider = space.parse_space(_space(optimizer__learning_rate='log_uniform(1e-4, 1e-1)',
                                   optimizer__b2='one_minus_log_uniform(0.9, 0.999)'))
  assert [t['optimizer.learning_rate'] for t in space.random_trials(wider, 3, 5)] == [
      t['optimizer.learning_rate'] for t in small]
  assert space.random_trials(specs, seed=4, num_trials=5) != small


def test_grid_is_the_product():
  specs = space.parse_space(_space(optimizer__learning_rate='grid(0.1, 0.01, 0.001)',
                                   model__widths='grid((8,), (16, 16))'))
  trials = list(sampling.grid(specs))
  assert len(trials) == 6
  assert {(t['model.widths'], t['optimizer.learning_rate']) for t in trials} == {
      (w, lr) for w in ((8,), (16, 16)) for lr in (0.1, 0.01, 0.001)}


def test_grid_refuses_a_non_grid_spec():
  specs = space.parse_space(_space(optimizer__learning_rate='log_uniform(1e-4, 1e-1)'))
  with pytest.raises(space.SpecError, match='optimizer.learning_rate'):
    sampling.grid(specs)


@pytest.mark.parametrize('text,message', [
    ('log_uniform(0, 1)', 'must be > 0'),
    ('log_uniform(1e-1, 1e-4)', 'low must be below high'),
    ('one_minus_log_uniform(0.9, 1.0)', 'lie in \\(0, 1\\)'),
    ('int_uniform(1, 2.5)', 'integers'),
    ('normal(0, 1)', 'is not a spec'),
    ('log_uniform(1e-4)', 'two numbers'),
    ('choice()', 'at least one value'),
    ('uniform(a, b)', 'Python literals'),
])
def test_bad_specs_name_the_field(text, message):
  with pytest.raises(space.SpecError, match=message) as error:
    space.parse(text, 'optimizer.learning_rate')
  assert 'sweep.space.optimizer.learning_rate' in str(error.value)
