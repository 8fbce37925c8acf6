"""model.name=PACKAGE.MODULE:ATTR: a Flax module bnlab did not write (tests/custom_models.py),
swept per member like bnlab's own: a member equals its trial alone, per-member BN momentum
reaches the module's BatchNorm, model.kwargs reaches its constructor, a sweep writes its files
and resumes, and every bad name is one line before anything compiles."""

import csv
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bnlab import checks
from bnlab import models
from bnlab import population as population_lib
from bnlab import space
from bnlab import sweep
from tests.conftest import ROOT
from tests.conftest import member
from tests.conftest import train_population

BNNET = 'tests.custom_models:BNNet'
NONORM = 'tests.custom_models:NoNorm'


def _assert_trees_close(a, b, rtol=1e-4, atol=1e-5):
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=rtol, atol=atol), a, b)


def _custom(config, name=BNNET, **overrides):
  config = space.with_overrides(config, {'model.name': name, 'optimizer.name': 'sgd',
                                         'optimizer.learning_rate': 0.1, **overrides})
  config.sweep.space.model.widths = ''  # bnlab's widths mean nothing to a module of the user's.
  return config


def test_a_member_of_a_momentum_sweep_equals_the_trial_trained_alone(config, digits):
  configs = [_custom(config, **{'model.bn_momentum': m}) for m in (0.5, 0.9, 0.99)]
  sweep_pop, sweep_metrics = train_population(configs, digits)
  alone_pop, alone_metrics = train_population(configs[1:2], digits)
  for tree in ('params', 'batch_stats'):
    _assert_trees_close(member(getattr(sweep_pop.state, tree), 1),
                        member(getattr(alone_pop.state, tree), 0))
  np.testing.assert_allclose(sweep_metrics['val_loss'][1], alone_metrics['val_loss'][0],
                             rtol=1e-5)
  # Training normalizes by the batch's statistics, so momentum changes only the running
  # averages: equal parameters, and each member's own batch_stats.
  params = [member(sweep_pop.state.params, k) for k in range(3)]
  _assert_trees_close(params[0], params[2])
  means = [member(sweep_pop.state.batch_stats, k)['BatchNorm_0']['mean'] for k in range(3)]
  for a, b in ((0, 1), (1, 2), (0, 2)):
    assert not np.allclose(means[a], means[b], atol=1e-3)


def test_each_members_momentum_reaches_the_modules_batch_norm(config, digits):
  data, _ = digits
  x = data['x_train'][:32]
  model_config = _custom(config).model
  momentum = jnp.array([0.0, 0.5, 0.9])

  def running_mean(m):
    model = models.make_model(model_config, 10, {'bn_momentum': m, 'bn_epsilon': 1e-5,
                                                 'init_scale': 1.0})
    variables = model.init(jax.random.key(0), x[:1], train=False)
    _, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
    return updates['batch_stats']['BatchNorm_0']['mean'], variables['params']

  got, params = jax.jit(jax.vmap(running_mean))(momentum)
  # Reference: mean <- m * 0 + (1 - m) * (the batch mean of the BN's input, x @ kernel).
  h = np.asarray(x, np.float64).reshape(32, -1) @ np.asarray(params['Dense_0']['kernel'][0],
                                                             np.float64)
  want = (1 - np.asarray(momentum, np.float64))[:, None] * h.mean(0)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_model_kwargs_reach_the_constructor_and_a_module_without_batch_stats_trains(
    config, digits):
  data, num_classes = digits
  bnnet = _custom(config)
  bnnet.model.kwargs.hidden = 8
  model = models.make_model(bnnet.model, num_classes, {'bn_momentum': 0.9, 'bn_epsilon': 1e-5,
                                                        'init_scale': 1.0})
  assert model.hidden == 8 and model.num_classes == num_classes and model.bn_momentum == 0.9
  params = model.init(jax.random.key(0), data['x_train'][:1])['params']
  assert params['Dense_0']['kernel'].shape == (64, 8)
  configs = [_custom(config, NONORM, **{'optimizer.learning_rate': lr}) for lr in (0.05, 0.2)]
  pop, metrics = train_population(configs, digits)
  assert pop.state.batch_stats == {} and np.all(np.isfinite(metrics['val_loss']))


class Interrupt(Exception):
  """Stands for a kill at the point where a test raises it."""


def _results(workdir):
  with open(os.path.join(workdir, 'results.csv')) as f:
    return [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(f)]


def test_a_sweep_of_a_custom_model_writes_its_report_and_resumes(config, tmp_path, monkeypatch):
  config = _custom(config)
  config.model.kwargs.hidden = 8
  config.sweep.num_trials, config.train.checkpoint_every = 2, 1
  sweep.run(config, str(tmp_path / 'whole'))
  whole = _results(tmp_path / 'whole')
  assert [r['status'] for r in whole] == ['ok', 'ok']
  assert os.path.getsize(tmp_path / 'whole' / 'report.html') > 0
  real, calls = population_lib.Population.run_epoch, []

  def run_epoch(self, *args, **kwargs):
    calls.append(self.epoch)
    if len(calls) == 2:  # Killed in the second epoch, after the first one's checkpoint.
      raise Interrupt
    return real(self, *args, **kwargs)

  monkeypatch.setattr(population_lib.Population, 'run_epoch', run_epoch)
  with pytest.raises(Interrupt):
    sweep.run(config, str(tmp_path / 'killed'))
  sweep.run(config, str(tmp_path / 'killed'))
  assert calls == [0, 1, 1]  # Resumed at its second epoch.
  assert _results(tmp_path / 'killed') == whole


def _kwargs(**kwargs):
  return kwargs


CASES = [
    (_kwargs(name='tests.no_such_module:Net'),
     "model.name='tests.no_such_module:Net': cannot import tests.no_such_module "
     "(ModuleNotFoundError: No module named 'tests.no_such_module'); it must be importable "
     'from the Python path (PYTHONPATH)'),
    (_kwargs(name=':Net'), "model.name=':Net' must name a Flax module as PACKAGE.MODULE:ATTR"),
    (_kwargs(name='tests.custom_models:Missing'),
     "model.name='tests.custom_models:Missing': module tests.custom_models has no attribute "
     "'Missing'"),
    (_kwargs(name='tests.custom_models:NotAModule'),
     "model.name='tests.custom_models:NotAModule': NotAModule is a class, not a "
     'flax.linen.Module subclass'),
    (_kwargs(name='tests.custom_models:NOT_A_CLASS'),
     "model.name='tests.custom_models:NOT_A_CLASS': NOT_A_CLASS is a int, not a "
     'flax.linen.Module subclass'),
    (_kwargs(name='tests.custom_models:NoTrain'),
     "model.name='tests.custom_models:NoTrain': NoTrain.__call__ takes no `train` argument; "
     'bnlab calls it as apply(variables, x, train=...)'),
    (_kwargs(name='tests.custom_models:NoNumClasses'),
     "model.name='tests.custom_models:NoNumClasses': NoNumClasses declares no field "
     'num_classes; bnlab constructs it with num_classes=...'),
    (_kwargs(kwargs={'depth': 2}),
     "model.kwargs.depth: tests.custom_models:BNNet declares no field 'depth'; its fields: "
     'num_classes, hidden, bn_momentum'),
    (_kwargs(kwargs={'bn_momentum': 0.5}),
     'model.kwargs.bn_momentum: bnlab sets bn_momentum itself, per member; set '
     'model.bn_momentum instead'),
    (_kwargs(kwargs={'num_classes': 3}),
     'model.kwargs.num_classes: bnlab sets num_classes itself, from the dataset'),
    (_kwargs(name='mlp', kwargs={'hidden': 8}),
     "model.kwargs is only for model.name=PACKAGE.MODULE:ATTR, not model.name='mlp'"),
    (_kwargs(name=NONORM, bn_eval='precise'),
     "model.bn_eval='precise' needs tests.custom_models:NoNorm to declare the field "
     'bn_momentum (used as its BatchNorm momentum)'),
    (_kwargs(name=NONORM),  # configs/test.py sweeps model.bn_momentum: NoNorm has none.
     "sweep.space.model.bn_momentum: model.name='tests.custom_models:NoNorm' gets only "
     'num_classes, model.kwargs and those of bn_momentum, bn_epsilon, init_scale it declares, '
     'so model.bn_momentum would change nothing'),
    (_kwargs(space={'model.widths': 'choice((16, 16), (8,))'}),
     "sweep.space.model.widths: model.name='tests.custom_models:BNNet' gets only num_classes, "
     'model.kwargs and those of bn_momentum, bn_epsilon, init_scale it declares, so '
     'model.widths would change nothing'),
]


@pytest.mark.parametrize('case,message', CASES)
def test_a_bad_custom_model_is_one_line_naming_the_field(config, case, message):
  config = _custom(config, case.get('name', BNNET))
  config.model.bn_eval = case.get('bn_eval', 'running')
  for key, value in case.get('kwargs', {}).items():
    config.model.kwargs[key] = value
  for field, text in case.get('space', {}).items():
    section, key = field.split('.')
    config.sweep.space[section][key] = text
  with pytest.raises(checks.ConfigError) as error:
    sweep.prepare(config)
  assert str(error.value) == message


def test_a_bad_model_name_from_the_command_line_is_one_line_exit_2(data_dir, tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'launch.py'), '--config=configs/test.py',
       f'--workdir={tmp_path / "run"}', f'--config.dataset.data_dir={data_dir}',
       '--config.model.name=tests.custom_models:NoTrain'],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      "error: model.name='tests.custom_models:NoTrain': NoTrain.__call__ takes no `train` "
      'argument; bnlab calls it as apply(variables, x, train=...)')
  assert not os.path.exists(tmp_path / 'run')
