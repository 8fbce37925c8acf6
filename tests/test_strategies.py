"""Search strategies: samplers, boxes, rungs, PBT's exploit/explore (and the PBT paper's toy),
TPE batches, seeds, and halving/PBT on the populations against the same trials trained plainly."""

import csv
import itertools
import math
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bnlab import checks
from bnlab import population as population_lib
from bnlab import records
from bnlab import space
from bnlab import strategies
from bnlab import sweep
from bnlab.strategies import base
from bnlab.strategies import coarse_to_fine
from bnlab.strategies import halving
from bnlab.strategies import pbt
from bnlab.strategies import sampling
from bnlab.strategies import tpe
from bnlab.reporting import results as results_files
from bnlab.reporting import sweepfiles
from tests.conftest import train_trials

SPECS = space.parse_space({'optimizer': {'learning_rate': 'log_uniform(1e-4, 1e-1)',
                                         'b2': 'one_minus_log_uniform(0.9, 0.9999)'},
                           'model': {'widths': 'choice((8,), (16, 16), (32,))'}})


def _inside(spec, value):
  if not spec.is_numeric:
    return value in spec.args
  return spec.args[0] <= value <= spec.args[1]


def test_quasirandom_is_prefix_stable_stratified_and_inside_the_space():
  assert sampling.quasirandom_trials(SPECS, 3, 5) == sampling.quasirandom_trials(SPECS, 3, 12)[:5]
  assert sampling.quasirandom_trials(SPECS, 3, 5) != sampling.quasirandom_trials(SPECS, 4, 5)
  for setting in sampling.quasirandom_trials(SPECS, 0, 40):
    assert all(_inside(SPECS[f], v) for f, v in setting.items())
  # Sobol's defining balance: 2^m points put exactly one point in each of 2^m equal cells (per
  # dimension), which 16 random draws almost never do.
  u = sampling.quasirandom_u(3, 0, 16)
  for column in u.T:
    assert sorted(np.floor(column * 16).astype(int)) == list(range(16))


def test_random_u_is_numpys_generator_bit_for_bit():
  trials = np.array([0, 1, 2, 77, 4095, 2**31, 2**32 - 1, 2**32, 2**40 + 3])  # Past 32 bits too.
  for seed in (0, 3, 2**32 - 1, 2**32 + 5, 2**70 + 3):  # Seeds of one, two and three words.
    for field in ('optimizer.learning_rate', 'model.widths', ''):
      expected = [np.random.default_rng(space.field_key(seed, int(t), field)).random()
                  for t in trials]
      assert space.random_u(seed, trials, field).tolist() == expected


def test_lazy_trials_are_the_eager_settings():
  assert list(sampling.random(SPECS, 3, 50)) == space.random_trials(SPECS, 3, 50)
  assert sampling.random(SPECS, 3, 50)[7:9] == space.random_trials(SPECS, 3, 9)[7:]
  assert list(sampling.quasirandom(SPECS, 3, 40)) == sampling.quasirandom_trials(SPECS, 3, 40)
  grid = space.parse_space({'optimizer': {'learning_rate': 'grid(0.1, 0.01, 0.001)'},
                            'model': {'widths': 'grid((8,), (16, 16))', 'depth': 'grid(1, 2, 3)'}})
  product = [dict(zip(grid, values))  # The last field fastest.
             for values in itertools.product(*(spec.args for spec in grid.values()))]
  assert list(sampling.grid(grid)) == product
  assert list(sampling.random({}, 0, 3)) == space.random_trials({}, 0, 3) == [{}] * 3


def _plan_of(context, settings):
  return population_lib.group_chunks(context.buckets(settings), context.max_parallel)


def test_lazy_buckets_plan_the_chunks_the_configs_do(config):
  # Two (16, 16) choices are one program: equal static configs share a bucket whatever u chose.
  config.sweep.space.model.widths = 'choice((16, 16), (8,), (16, 16))'
  config.sweep.space.train.batch_size = 'int_uniform(16, 17)'
  specs = sweep.prepare(config)
  context = base.Context(config, specs, {}, 10, 4, check_trial=checks.check_trial)
  settings = space.random_trials(specs, config.seed, 60)
  configs = [context.trial_config(s) for s in settings]
  expected = population_lib.chunk_plan(configs, 4)
  assert _plan_of(context, sampling.random(specs, config.seed, 60)) == expected
  assert _plan_of(context, settings) == expected  # A plain list, as TPE and rounds pass.
  assert len({i for members, _ in expected for i in members}) == 60


def test_a_sweep_of_two_million_trials_makes_only_the_settings_it_trains(config, monkeypatch):
  config.sweep.num_trials = 2_000_000
  specs = sweep.prepare(config)
  made, take = [], sampling.Trials.take
  monkeypatch.setattr(sampling.Trials, 'take', lambda self, i: made.append(len(i)) or take(self, i))
  seen = {}

  def first_chunk_only(plan, chunk, count, *args):
    seen.update(plan=plan, count=count, first=chunk(plan[0][0]))
    return [None] * count
  monkeypatch.setattr(population_lib, 'train_chunks', first_chunk_only)
  context = base.Context(config, specs, {}, 10, 4, check_trial=checks.check_trial)
  trials = sampling.random(specs, config.seed, config.sweep.num_trials)
  context.train(trials, 0)
  plan = seen['plan']
  assert seen['count'] == 2_000_000
  owned = np.concatenate([members[:count] for members, count in plan])
  assert np.array_equal(np.sort(owned), np.arange(2_000_000))  # Every trial once.
  # The first chunk is the first trials of the first bucket, as a small sweep plans them.
  small = space.random_trials(specs, config.seed, 40)
  small_plan = _plan_of(context, small)
  assert plan[0] == small_plan[0]
  configs, settings, ids = seen['first']
  assert settings == [small[i] for i in small_plan[0][0]] and ids == small_plan[0][0]
  assert [c.optimizer.learning_rate for c in configs] == [s['optimizer.learning_rate']
                                                          for s in settings]
  # Settings made: the chunk's, plus one per static combination (each bucket's first, checked).
  assert sum(made) <= len(plan[0][0]) + 2
  assert trials[1_999_999] == {f: spec.value(np.random.default_rng(
      space.field_key(config.seed, 1_999_999, f)).random()) for f, spec in specs.items()}


def test_a_grid_of_two_million_points_is_planned_without_making_them(config):
  config.sweep.strategy = 'grid'
  space_config = config.sweep.space
  space_config.optimizer.learning_rate = 'grid(' + ', '.join(f'{i}e-4' for i in range(1, 101)) + ')'
  space_config.model.bn_momentum = 'grid(' + ', '.join(f'0.{i:03d}' for i in range(200)) + ')'
  space_config.model.widths = 'grid(' + ', '.join(f'({w},)' for w in range(1, 101)) + ')'
  specs = sweep.prepare(config)
  assert strategies.STRATEGIES['grid'].plan(config, specs).trials == 2_000_000
  grid = sampling.grid(specs)
  fields = list(specs)
  for i in (0, 1, 199, 200, 1_234_567, 1_999_999):
    cells = np.unravel_index(i, [len(specs[f].args) for f in fields])
    assert grid[i] == {f: specs[f].args[c] for f, c in zip(fields, cells)}


def test_u_cell_inverts_the_specs():
  lr, b2, widths = SPECS['optimizer.learning_rate'], SPECS['optimizer.b2'], SPECS['model.widths']
  assert sampling.u_cell(lr, lr.value(0.3)) == pytest.approx((0.3, 0.3))
  assert sampling.u_cell(b2, b2.value(0.7)) == pytest.approx((0.7, 0.7))
  assert sampling.u_cell(widths, (16, 16)) == pytest.approx((1 / 3, 2 / 3))
  assert sampling.u_cell(space.parse('int_uniform(1, 4)'), 2) == pytest.approx((0.25, 0.5))


class _FakeContext(base.Context):
  """Stands in for the population loop: val_accuracy = objective(setting), no training."""

  def __init__(self, config, specs, calls, objective):
    super().__init__(config, specs, data={}, num_classes=0, max_parallel=0)
    self.calls, self.objective = calls, objective

  def train(self, settings, first_trial):
    self.calls.append((first_trial, len(settings)))
    return [records.TrialRecord(first_trial + i, s, 'ok', {'val_accuracy': self.objective(s)},
                                epochs=1) for i, s in enumerate(settings)]


def _near_1e2(setting):
  return -abs(math.log10(setting['optimizer.learning_rate']) + 2)


def test_coarse_to_fine_samples_each_round_in_the_box_of_the_previous_best(config):
  config.sweep.strategy, config.sweep.num_trials = 'coarse_to_fine', 20
  config.sweep.coarse_to_fine.rounds = 3
  specs = {'optimizer.learning_rate': SPECS['optimizer.learning_rate']}
  calls = []
  results = coarse_to_fine.run(_FakeContext(config, specs, calls, _near_1e2))
  settings = [r.setting for r in results]
  assert calls == [(0, 7), (7, 7), (14, 6)]
  assert settings[:7] == sampling.quasirandom_trials(specs, config.seed, 7)  # Round 0.
  spec = specs['optimizer.learning_rate']
  for (start, size), (next_start, next_size) in zip(calls, calls[1:]):
    done = sorted(range(start, start + size), key=lambda i: -results[i].value('val_accuracy'))
    top = [spec.quantile(settings[i]['optimizer.learning_rate']) for i in done[:2]]  # 25%: 2.
    for i in range(next_start, next_start + next_size):
      assert min(top) - 1e-9 <= spec.quantile(settings[i]['optimizer.learning_rate']) \
          <= max(top) + 1e-9
  median = [np.median([r.value('val_accuracy') for r in results[s:s + n]]) for s, n in calls]
  assert median[2] > median[0]  # Zooming in improves the typical trial.


def test_tpe_asks_in_batches_inside_the_space_and_learns(config):
  config.sweep.strategy, config.sweep.num_trials, config.sweep.tpe.batch_size = 'tpe', 40, 8
  calls = []
  settings = [r.setting for r in tpe.run(_FakeContext(config, SPECS, calls, _near_1e2))]
  assert calls == [(8 * i, 8) for i in range(5)]
  assert all(_inside(SPECS[f], v) for s in settings for f, v in s.items())
  first, last = ([_near_1e2(s) for s in settings[a:a + 8]] for a in (0, 32))
  assert np.mean(last) > np.mean(first)  # Told results pull TPE toward lr = 1e-2.


def test_rungs_and_survivors():
  assert halving.rungs(1, 3, 9) == [1, 3, 9]
  assert halving.rungs(2, 2, 9) == [2, 4, 8, 9]
  assert halving.rungs(3, 3, 3) == [3]
  assert halving.survivors([0.5, 0.9, -np.inf, 0.7, 0.9, 0.1], 3).tolist() == [1, 4]
  assert halving.survivors([0.5, 0.2], 3).tolist() == [0]


def test_exploit_copies_the_top_quantile_into_the_bottom():
  scores = np.array([0.1, 0.9, 0.5, -np.inf, 0.8, 0.3, 0.7, 0.2])
  source, copied = pbt.exploit(scores, 0.25, np.random.default_rng(0))
  assert np.flatnonzero(copied).tolist() == [0, 3]  # The two worst.
  assert set(source[[0, 3]]) <= {1, 4}  # From the two best.
  assert source[~copied].tolist() == np.flatnonzero(~copied).tolist()


def test_perturb_scales_in_the_specs_own_scale_and_stays_inside():
  rng = np.random.default_rng(0)
  lr, b2 = SPECS['optimizer.learning_rate'], SPECS['optimizer.b2']
  for _ in range(50):
    ratio = pbt.perturb(lr, 1e-2, rng, 0.0) / 1e-2
    assert ratio == pytest.approx(0.8) or ratio == pytest.approx(1.2)
    ratio = (1 - pbt.perturb(b2, 0.99, rng, 0.0)) / 0.01  # 1 - b2 is what scales.
    assert ratio == pytest.approx(0.8) or ratio == pytest.approx(1.2)
    assert _inside(lr, pbt.perturb(lr, 0.1, rng, 0.5)) and _inside(b2, pbt.perturb(b2, 0.9, rng, 0))


def _toy(use_pbt, steps=200, interval=4):
  """The PBT paper's toy (Jaderberg et al. 2017, fig. 2): maximise Q = 1.2 - |theta|^2 by
  gradient ascent on the surrogate Q_h = 1.2 - h . theta^2, two members, h = [1, 0] and [0, 1]."""
  spec = space.parse('uniform(0, 1)')
  theta, h = np.full((2, 2), 0.9), np.eye(2)
  q = lambda t: 1.2 - jnp.sum(t ** 2, -1)
  grad = jax.jit(jax.vmap(jax.grad(lambda t, hh: 1.2 - jnp.sum(hh * t ** 2))))
  rng = np.random.default_rng(0)
  for step in range(1, steps + 1):
    theta = np.asarray(theta + 0.01 * grad(theta, h))
    if use_pbt and step % interval == 0:
      source, copied = pbt.exploit(np.asarray(q(theta)), 0.5, rng)
      theta = theta[source]
      values = pbt.explore({0: h[source, 0], 1: h[source, 1]}, {0: spec, 1: spec}, copied, rng,
                           0.25)
      h = np.stack([values[0], values[1]], -1).astype(np.float64)
  return float(np.max(q(theta)))


def test_pbt_reaches_the_toy_optimum_that_fixed_hyperparameters_miss():
  assert _toy(use_pbt=True) > 1.19
  assert _toy(use_pbt=False) < 1.2 - 0.81 + 0.01  # Each member keeps theta_i = 0.9 forever.


def test_mean_spread_matches_scipy():
  values = [0.91, 0.93, 0.95, 0.92]
  mean, std, half = base.mean_spread(values)
  low, high = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
  assert (mean, std) == pytest.approx((np.mean(values), np.std(values, ddof=1)))
  assert (mean - half, mean + half) == pytest.approx((low, high))


@pytest.mark.parametrize('overrides, message', [
    ({'sweep.strategy': 'bayes'}, "sweep.strategy='bayes' is not one of: grid, random"),
    ({'sweep.strategy': 'halving', 'sweep.halving.eta': 1},
     'sweep.halving.eta=1 must be a int >= 2'),
    ({'sweep.strategy': 'halving', 'sweep.halving.min_epochs': 5},
     'sweep.halving.min_epochs=5 must be <= train.epochs=2'),
    ({'sweep.strategy': 'coarse_to_fine', 'sweep.coarse_to_fine.rounds': 0},
     'sweep.coarse_to_fine.rounds=0 must be a int'),
    ({'sweep.strategy': 'coarse_to_fine', 'sweep.coarse_to_fine.top_fraction': 1.5},
     'sweep.coarse_to_fine.top_fraction=1.5'),
    ({'sweep.strategy': 'hyperband', 'sweep.hyperband.eta': 1},
     'sweep.hyperband.eta=1 must be a int >= 2'),
    ({'sweep.strategy': 'hyperband', 'sweep.hyperband.min_epochs': 3},
     'train.epochs=2 must be a multiple of sweep.hyperband.min_epochs=3'),
    ({'sweep.strategy': 'hyperband', 'sweep.seeds': 2},
     "sweep.seeds=2: sweep.strategy='hyperband' takes seeds=1"),
    ({'sweep.strategy': 'tpe', 'sweep.space.optimizer.learning_rate': 'grid(0.1, 0.01)'},
     "sweep.space.optimizer.learning_rate=grid(...): sweep.strategy='tpe' takes no grid"),
    ({'sweep.strategy': 'tpe', 'sweep.tpe.batch_size': 0}, 'sweep.tpe.batch_size=0'),
    ({'sweep.strategy': 'pbt', 'sweep.pbt.quantile': 0.75}, 'sweep.pbt.quantile=0.75'),
    ({'sweep.strategy': 'pbt', 'sweep.pbt.interval': True}, 'sweep.pbt.interval=True must be'),
    ({'sweep.strategy': 'pbt', 'sweep.space.optimizer.learning_rate': '',
      'sweep.space.model.bn_momentum': ''},
     "sweep.space: sweep.strategy='pbt' needs a swept dynamic"),
    ({'sweep.strategy': 'halving', 'sweep.seeds': 2}, "sweep.seeds=2: sweep.strategy='halving'"),
    ({'sweep.seeds': 0}, 'sweep.seeds=0 must be a int >= 1'),
])
def test_bad_strategy_inputs_name_the_field(config, overrides, message):
  with pytest.raises(checks.ConfigError, match='^' + re.escape(message)):
    sweep.prepare(space.with_overrides(config, overrides))


@pytest.mark.parametrize('strategy', strategies.SEARCHING)
def test_a_space_with_nothing_to_search_is_refused(config, strategy):
  config.sweep.strategy = strategy
  for section in config.sweep.space.values():
    for key in section:
      section[key] = ''
  message = f"sweep.space is empty: sweep.strategy='{strategy}' has nothing to search"
  with pytest.raises(checks.ConfigError, match='^' + re.escape(message)):
    sweep.prepare(config)


def _rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def test_halving_shrinks_by_rung_and_survivors_continue_exactly(config, digits, tmp_path):
  data, num_classes = digits
  config.sweep.strategy, config.sweep.halving.eta, config.sweep.halving.min_epochs = 'halving', 2, 1
  config.train.epochs, config.sweep.max_parallel = 3, 8
  results = sweep.run(config, str(tmp_path))
  # 6 trials, rungs at epochs 1, 2, 3: 3 pruned after one epoch, 2 after two, 1 trained to 3.
  assert sorted((r.status, r.epochs) for r in results) == (
      [('ok', 3)] + [('pruned', 1)] * 3 + [('pruned', 2)] * 2)
  assert [(r['status'], int(r['epochs'])) for r in _rows(tmp_path / 'results.csv')] == [
      (r.status, r.epochs) for r in results]
  for rung in (1, 2):  # Whoever went on beat whoever stopped, at the rung.
    went_on = [r.history[rung - 1]['val_accuracy'] for r in results if r.epochs > rung]
    stopped = [r.history[rung - 1]['val_accuracy'] for r in results if r.epochs == rung]
    assert min(went_on) >= max(stopped)
  # The same trials trained to the end without pruning: each halving trial's curve is its prefix.
  plain = train_trials([space.with_overrides(config, r.setting) for r in results],
                       [r.trial for r in results], data, num_classes, config.seed, 8)
  for cut, full in zip(results, plain):
    for mine, theirs in zip(cut.history, full.history[:cut.epochs]):
      for metric in ('val_loss', 'train_loss', 'val_accuracy'):
        assert mine[metric] == pytest.approx(theirs[metric], rel=1e-5), (cut.trial, metric)
  survivor = next(r for r in results if r.status == 'ok')
  assert survivor.value('test_accuracy') == pytest.approx(
      plain[survivor.trial].value('test_accuracy'))


def test_seeds_train_in_one_program_and_report_the_mean(config, digits):
  data, num_classes = digits
  config.sweep.space.model.widths, config.sweep.seeds = '', 2
  # SGD: per-member batches run other kernels than one shared batch; Adam would turn that float
  # noise into lr-sized steps (see test_population), SGD keeps it at float level.
  config.optimizer.name = 'sgd'
  settings = space.random_trials(space.parse_space(config.sweep.space), config.seed, 2)
  context = base.Context(config, space.parse_space(config.sweep.space), data, num_classes, 8)
  seeded = context.train(settings, 0)  # 4 members, own orders.
  per_seed = []
  for seed in (config.seed, config.seed + 1):  # Each seed alone, members sharing one order.
    configs = [space.with_overrides(config, {**s, 'seed': seed}) for s in settings]
    per_seed.append(train_trials(configs, [0, 1], data, num_classes, seed, 8))
  for j, result in enumerate(seeded):
    values = [runs[j].value('val_loss') for runs in per_seed]
    assert values[0] != pytest.approx(values[1], rel=1e-3)  # Seeds differ.
    assert result.extras['val_loss_per_seed'] == pytest.approx(values, rel=1e-4)
    assert result.value('val_loss') == pytest.approx(np.mean(values), rel=1e-4)
    assert result.metrics['val_loss_std'] == pytest.approx(np.std(values, ddof=1), rel=1e-3)
    assert result.extras['seeds'] == 2 and len(result.history) == config.train.epochs
    assert result.setting == settings[j]


def _pbt_config(config):
  config.sweep.strategy, config.sweep.space.model.widths = 'pbt', ''
  config.train.epochs, config.sweep.max_parallel = 3, 8
  config.sweep.pbt.interval, config.sweep.pbt.quantile = 1, 0.5
  return config


def test_pbt_records_each_members_schedule_and_lineage(config, tmp_path):
  config = _pbt_config(config)
  specs = space.parse_space(config.sweep.space)
  results = sweep.run(config, str(tmp_path))
  assert os.path.getsize(tmp_path / 'plots' / 'pbt_schedules.png') > 0
  assert {r['status'] for r in _rows(tmp_path / 'results.csv')} == {'ok'}
  initial = space.random_trials(specs, config.seed, config.sweep.num_trials)
  changed = 0
  for result, start in zip(results, initial):
    schedule = [{f: row[f] for f in specs} for row in result.history]
    assert schedule[0] == pytest.approx(start)  # Epoch 1 trains the sampled setting.
    assert result.setting == pytest.approx(schedule[-1])  # The setting it ended with.
    changed += schedule[-1] != pytest.approx(start)
  assert changed >= 1  # Three of six members are replaced at each of two PBT steps.
  # Lineage: after epochs 1 and 2 the bottom three each took the state of one of the top three,
  # ranked by that epoch's val_accuracy (one population: widths are not swept).
  for epoch in (1, 2):
    order = sorted(results, key=lambda r: -r.history[epoch - 1]['val_accuracy'])
    top, bottom = {r.trial for r in order[:3]}, {r.trial for r in order[3:]}
    copies = {r.trial: source for r in results for e, source in r.extras['lineage'] if e == epoch}
    assert set(copies) == bottom and set(copies.values()) <= top
    for r in results:
      assert r.history[epoch - 1][records.COPIED_FROM] == copies.get(r.trial)
  # It survives the files: results.csv and history.jsonl carry it, and load gives it back.
  rows = _rows(tmp_path / 'results.csv')
  assert [row['lineage'] for row in rows] == [sweepfiles.lineage_cell(r.extras['lineage'])
                                              for r in results]
  loaded = sweepfiles.load(str(tmp_path)).results
  assert [r.extras['lineage'] for r in loaded] == [r.extras['lineage'] for r in results]
  assert [[row[records.COPIED_FROM] for row in r.history] for r in loaded] == [
      [row[records.COPIED_FROM] for row in r.history] for r in results]
  written = (tmp_path / 'results.csv').read_bytes().decode()  # CSV rows end in \r\n.
  assert results_files.results_csv(loaded, list(specs)) == written
  assert results_files.history_jsonl(loaded) == (tmp_path / 'history.jsonl').read_text()


def test_a_diverged_pbt_member_that_was_replaced_keeps_its_divergence_epoch(config, tmp_path):
  config = _pbt_config(config)
  # Trials 0 and 3 draw lr = 1e30 and blow up in epoch 1; the copies they get then train on.
  config.sweep.space.optimizer.learning_rate = 'choice(0.03, 0.01, 1e30)'
  config.train.epochs = 2
  results = sweep.run(config, str(tmp_path))
  rows = {int(row['trial']): row for row in _rows(tmp_path / 'results.csv')}
  for trial in (0, 3):
    assert results[trial].diverged_epoch == 1 and rows[trial]['diverged_epoch'] == '1'
    assert results[trial].extras['lineage'][0][0] == 1 and rows[trial]['lineage'].startswith('1:')
  # At least one went on healthy from its copy: status ok, and still the trace of its blow-up.
  assert any(rows[t]['status'] == 'ok' for t in (0, 3))
  assert all(rows[t]['diverged_epoch'] == '' for t in (1, 2, 4, 5) if rows[t]['lineage'] == '')


def test_pbt_step_copies_the_whole_state_and_sets_the_new_hyperparameters(config, digits):
  data, num_classes = digits
  config = _pbt_config(config)
  specs = space.parse_space(config.sweep.space)
  settings = space.random_trials(specs, config.seed, config.sweep.num_trials)
  (population,) = base.Context(config, specs, data, num_classes, 8).populations(settings)
  population.run_epoch(data)
  before = jax.device_get(population.state)
  values = {f: [s[f] for s in settings] for f in specs}
  pbt.exploit_and_explore(population, list(specs), config, specs, np.random.default_rng(7))
  new = {f: [population.settings[k][f] for k in range(population.size)] for f in specs}
  source, copied = pbt.exploit(population.scores(config.sweep.metric, config.sweep.mode), 0.5,
                               np.random.default_rng(7))
  assert copied.sum() == 3
  after = jax.device_get(population.state)
  for k in range(6):
    for tree in ('params', 'batch_stats'):
      jax.tree.map(np.testing.assert_array_equal,
                   jax.tree.map(lambda a: a[k], getattr(after, tree)),
                   jax.tree.map(lambda a, s=source[k]: a[s], getattr(before, tree)))
    np.testing.assert_array_equal(after.opt_state.inner_state[2][0].mu['Dense_0']['kernel'][k],
                                  before.opt_state.inner_state[2][0].mu['Dense_0']['kernel'][
                                      source[k]])
  hparams = population.hparams()
  for field in specs:
    section, key = field.split('.')
    np.testing.assert_allclose(hparams[section][key], np.asarray(new[field], np.float32))
    for k in np.flatnonzero(~copied):
      assert new[field][k] == values[field][k]


@pytest.mark.parametrize('old, new', sorted(records.RENAMED.items()))
def test_an_old_flat_strategy_field_names_the_field_that_replaced_it(config, old, new):
  section, key = old.split('.')
  config[section][key] = 3  # As a config file of an earlier version would set it.
  with pytest.raises(checks.ConfigError, match='^' + re.escape(f'{old} is now {new}')):
    sweep.prepare(config)


@pytest.mark.parametrize('name', list(strategies.STRATEGIES))
def test_every_strategy_keeps_the_protocol_and_plans_what_it_trains(config, name):
  strategy = strategies.STRATEGIES[name]
  config.sweep.strategy = name
  if name == 'grid':
    config.sweep.space.optimizer.learning_rate = 'grid(0.1, 0.01)'
    config.sweep.space.model.bn_momentum = 'grid(0.9, 0.99)'
    config.sweep.space.model.widths = 'grid((16, 16), (8,))'
  specs = sweep.prepare(config)
  assert isinstance(strategy.SEARCHES, bool)
  assert (name in strategies.SEARCHING) == strategy.SEARCHES
  plan = strategy.plan(config, specs)
  assert plan.trials >= 1 and plan.trial_epochs >= plan.trials
  assert all(callable(getattr(strategy, f)) for f in ('check', 'plan', 'run'))
