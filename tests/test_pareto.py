"""sweep.objectives: the Pareto ranking against brute force, the costs against the model, the
files a sweep with two objectives writes, Optuna's multi-objective TPE, and every bad value."""

import importlib.util
import itertools
import math
import os

import jax
import numpy as np
import pandas as pd
import pytest

from bnlab import checks
from bnlab import costs
from bnlab import files
from bnlab import models
from bnlab import pareto
from bnlab import records
from bnlab import space
from bnlab import sweep
from bnlab.reporting import pages
from bnlab.reporting import results as results_files
from bnlab.reporting import sweepfiles
from bnlab.strategies import asked
from bnlab.strategies import tpe

TWO = 'val_accuracy:max, param_count:min'


def _dominates(a, b):
  return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def _brute_force_fronts(points):
  """Non-dominated sorting by its definition: peel the rows nothing left dominates."""
  fronts = [0] * len(points)
  left = [i for i, p in enumerate(points) if all(math.isfinite(v) for v in p)]
  front = 1
  while left:
    top = [i for i in left if not any(_dominates(points[j], points[i]) for j in left)]
    for i in top:
      fronts[i] = front
    left = [i for i in left if i not in top]
    front += 1
  return fronts


def test_front_ranks_equal_brute_force_sorting_on_random_points():
  rng = np.random.default_rng(0)
  for _ in range(300):
    n, k = int(rng.integers(1, 40)), int(rng.integers(2, 5))
    points = rng.integers(0, 5, size=(n, k)).astype(float)  # Few values: ties and duplicates.
    points[rng.random(n) < 0.1, int(rng.integers(k))] = np.nan
    expected = _brute_force_fronts(points.tolist())
    assert pareto.front_ranks(points).tolist() == expected
  points = rng.normal(size=(700, 3))  # Blocks of 256 rows and a short last one.
  assert pareto._dominated(points).tolist() == pareto._dominated(points, block=7).tolist()


def _record(trial, accuracy, params, status=records.OK):
  return records.TrialRecord(trial, {'model.widths': (trial,)}, status,
                              {'val_accuracy': accuracy, 'val_loss': 1 - accuracy,
                               'param_count': params}, 1)


def test_ranked_goes_by_front_then_the_first_objective_and_drops_the_diverged():
  rng = np.random.default_rng(1)
  objectives = pareto.parse(TWO)
  for _ in range(50):
    results = [_record(t, float(rng.integers(0, 4)) / 4, float(rng.integers(1, 5)),
                       records.DIVERGED if rng.random() < 0.1 else records.OK)
               for t in range(12)]
    points = [[r.value('val_accuracy'), -r.value('param_count')] if r.status == records.OK
              else [math.nan, math.nan] for r in results]
    fronts = _brute_force_fronts(points)
    expected = sorted((t for t in range(12) if fronts[t]),
                      key=lambda t: (fronts[t], -results[t].value('val_accuracy'),
                                     results[t].value('val_loss'), t))
    assert [r.trial for r in pareto.ranked(results, objectives)] == expected
    assert [r.trial for r in pareto.front(results, objectives)] == [
        t for t in expected if fronts[t] == 1]
    given = pareto.ranks(results, objectives)
    assert pareto.ranked(results, objectives, given) == pareto.ranked(results, objectives)
    assert pareto.has_front(results, objectives) == bool(expected)
  assert not pareto.has_front([_record(0, math.nan, 1.0)], objectives)


def test_parse_reads_every_metric_and_both_modes():
  assert pareto.parse('') == ()
  assert pareto.parse(' val_loss:min,flops_per_example:min , seconds_per_epoch:max') == (
      ('val_loss', 'min'), ('flops_per_example', 'min'), ('seconds_per_epoch', 'max'))
  for first, other in itertools.product(records.SELECTABLE, pareto.METRICS):
    if first != other:
      assert pareto.parse(f'{first}:max,{other}:min')[1] == (other, 'min')


@pytest.mark.parametrize('text, message', [
    ('val_accuracy:max, size:min', "unknown metric 'size'; valid: val_accuracy, val_loss, "
                                   'train_loss, param_count, flops_per_example'),
    ('val_accuracy, param_count:min', 'needs a mode: val_accuracy:max or val_accuracy:min'),
    ('val_accuracy:up, param_count:min', 'needs a mode'),
    ('val_accuracy:max, val_accuracy:min', 'val_accuracy is named twice'),
    ('val_accuracy:max', 'name two or more'),
    ('param_count:min, val_accuracy:max', 'the first objective is the sweep metric; valid: '
                                          'val_accuracy, val_loss, train_loss'),
    ('test_accuracy:max, param_count:min', "unknown metric 'test_accuracy'"),
])
def test_each_bad_objectives_value_is_one_line_naming_the_field(config, text, message):
  config.sweep.objectives = text
  with pytest.raises(records.ConfigError) as error:
    checks.check_config(config)
  assert str(error.value).startswith('sweep.objectives=') and message in str(error.value)
  assert '\n' not in str(error.value)


@pytest.mark.parametrize('overrides, message', [
    ({'sweep.metric': 'val_loss', 'sweep.mode': 'min'},
     'the first objective is the sweep metric, here val_loss:min; set '
     '--config.sweep.metric=val_accuracy --config.sweep.mode=max'),
    ({'sweep.strategy': 'halving'}, "sweep.strategy='halving' ranks by one metric; a Pareto "
                                    'front works with grid, random, quasirandom, tpe'),
    ({'sweep.strategy': 'pbt'}, "sweep.strategy='pbt' ranks by one metric"),
    ({'sweep.strategy': 'gp'}, "sweep.strategy='gp' ranks by one metric"),
    ({'sweep.pruner': 'median'}, "sweep.pruner='median' stops trials by sweep.metric alone"),
    ({'sweep.strategy': 'tpe', 'sweep.ask': 'slot'}, "sweep.ask='slot' stops trials"),
])
def test_objectives_refuse_what_would_cut_the_front(config, overrides, message):
  config.sweep.objectives = TWO
  config.sweep.space.optimizer.learning_rate = 'log_uniform(1e-3, 1e-1)'
  config.sweep.num_trials = 4
  for field, value in overrides.items():
    section, key = field.split('.')
    config[section][key] = value
  with pytest.raises(records.ConfigError, match='sweep.objectives=') as error:
    checks.check_config(config)
  assert message in str(error.value)


@pytest.mark.parametrize('norm', ['none', 'batch'])
def test_the_costs_are_the_models_parameters_and_its_matmul_flops(config, norm):
  config.model.widths, config.model.norm = (16, 8), norm
  model_config = space.with_overrides(config, {}).model
  model = models.make_model(model_config, 10, {'bn_momentum': 0.9, 'bn_epsilon': 1e-5,
                                               'init_scale': 1.0})
  variables = model.init(jax.random.key(0), np.zeros((1, 64), np.float32), train=False)
  got = costs.model_costs(config, 10, (64,))
  assert got['param_count'] == sum(x.size for x in jax.tree.leaves(variables['params']))
  matmul = 2 * (64 * 16 + 16 * 8 + 8 * 10)  # A multiply-add is two operations.
  # The rest is elementwise (bias, activation, normalization): a few per unit, no more.
  assert matmul <= got['flops_per_example'] <= matmul + 12 * (16 + 8 + 10)
  record = costs.with_costs(records.TrialRecord(0, {}, records.OK, {}, epochs=4, seconds=2.0), got)
  assert set(pareto.COSTS) <= set(record.metrics) and record.value('seconds_per_epoch') == 0.5


def _pareto_config(config, strategy):
  config.train.epochs, config.train.batch_size = 2, 32
  config.sweep.strategy, config.sweep.num_trials, config.sweep.max_parallel = strategy, 6, 4
  config.sweep.tpe.batch_size = 3
  config.sweep.objectives = TWO
  config.sweep.space.optimizer.learning_rate = 'log_uniform(1e-3, 1e-1)'
  config.sweep.space.model.widths = 'choice((16, 16), (8,))'
  return config


@pytest.mark.parametrize('strategy', ['random', 'tpe'])
def test_a_two_objective_sweep_writes_its_front_and_a_config_per_front_trial(
    tmp_path, config, strategy):
  config = _pareto_config(config, strategy)
  workdir = str(tmp_path / 'sweep')
  done = sweep.run(config, workdir)
  table = pd.read_csv(os.path.join(workdir, 'results.csv'))
  by_hand = _brute_force_fronts(
      [[a, -p] for a, p in zip(table.val_accuracy, table.param_count)])
  assert table.pareto_rank.fillna(0).astype(int).tolist() == by_hand
  assert set(table.flops_per_example) and (table.seconds_per_epoch > 0).all()
  assert table.groupby('model.widths').param_count.nunique().eq(1).all()  # One model per shape.
  front = pd.read_csv(os.path.join(workdir, 'pareto.csv'))
  assert sorted(front.trial) == sorted(table.trial[table.pareto_rank == 1])
  assert sorted(os.listdir(os.path.join(workdir, 'pareto'))) == sorted(
      f'trial_{t}.py' for t in front.trial)
  for _, row in front.iterrows():
    path = os.path.join(workdir, 'pareto', f'trial_{row.trial}.py')
    module_spec = importlib.util.spec_from_file_location('front_trial', path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    alone = module.get_config()
    assert alone.sweep.num_trials == 1 and not alone.sweep.space.optimizer.learning_rate
    assert alone.optimizer.learning_rate == pytest.approx(row['optimizer.learning_rate'])
    assert str(tuple(alone.model.widths)) == row['model.widths']
    assert f'_pareto/trial_{row.trial} unless --workdir' in open(path).read()
  assert os.path.exists(os.path.join(workdir, 'plots', 'pareto.png'))
  report = open(os.path.join(workdir, 'report.md')).read()
  assert '## Pareto front' in report and 'by Pareto front of val_accuracy:max' in report
  best = records.ranked(done, 'val_accuracy', 'max')[0]
  assert f'Trial {best.trial} of' in open(os.path.join(workdir, 'best_config.py')).read()
  loaded = sweepfiles.load(workdir)  # Read back and written again: the same bytes.
  again = results_files.results_csv(loaded.results, list(loaded.specs), loaded.objectives)
  assert again == open(os.path.join(workdir, 'results.csv'), newline='').read()
  for name in ('results.csv', 'history.jsonl'):  # As if killed: progress.jsonl has no costs.
    os.remove(os.path.join(workdir, name))
  pages.build(workdir)
  report = open(os.path.join(workdir, 'report.md')).read()
  assert '## Leaderboard (top 20 by val_accuracy,' in report and '## Pareto front' not in report


def test_tpe_tells_every_objective_to_a_multi_objective_study(config):
  config.sweep.objectives = 'val_accuracy:max, param_count:min, seconds_per_epoch:min'
  study = tpe._study(config)
  assert [d.name for d in study.directions] == ['MAXIMIZE', 'MINIMIZE', 'MINIMIZE']
  specs = {'optimizer.learning_rate': space.parse('log_uniform(1e-3, 1e-1)')}
  for status in (records.OK, records.DIVERGED, records.STOPPED):
    trial, setting = tpe._ask(study, specs, 1)
    record = records.TrialRecord(0, setting[0], status, {
        'val_accuracy': 0.75, 'val_loss': 0.5, 'param_count': 1e4, 'seconds_per_epoch': 0.25}, 2)
    asked.tell(study, trial[0], record, config, curve=False)
  told = study.get_trials()
  assert told[0].values == [0.75, 1e4, 0.25] and told[2].values == [0.75, 1e4, 0.25]
  assert told[1].state.name == 'FAIL'


def test_a_front_trials_config_trains_beside_its_sweep_and_never_into_it():
  assert files.default_workdir('runs/sweep/pareto/trial_7.py') == 'runs/sweep_pareto/trial_7'
  assert files.default_workdir('runs/sweep/best_config.py') == 'runs/sweep_best'
  assert files.default_workdir('configs/pareto.py') == 'runs/pareto'
  assert files.default_workdir('pareto/trial_7.py') == 'runs/trial_7'  # No sweep folder above.
