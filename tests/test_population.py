"""The member, programs and population layers: a member equals its setting trained alone, members
never leak, and a population compiles its three programs once."""

import jax
import jax.extend  # clear_in_memory_compilation_cache
import jax.numpy as jnp
import numpy as np
import pytest

from bnlab import data as data_lib
from bnlab import executables
from bnlab import member as member_lib
from bnlab import models
from bnlab import population as population_lib
from bnlab import programs
from bnlab import space
from tests.conftest import create_population
from tests.conftest import member
from tests.conftest import train_population
from tests.conftest import train_trials


def _configs(config, learning_rates, **overrides):
  return [space.with_overrides(config, {'optimizer.learning_rate': lr, **overrides})
          for lr in learning_rates]


def test_member_of_a_sweep_equals_the_setting_trained_alone(config, digits):
  # SGD, so that float-level differences between the N=4 and N=1 programs stay float-level
  # (Adam's normalization turns them into lr-sized steps where a gradient is near zero).
  configs = _configs(config, [3e-2, 1e-1, 3e-1, 1.0],
                     **{'model.bn_momentum': 0.8, 'optimizer.name': 'sgd'})
  sweep, sweep_metrics = train_population(configs, digits)
  for k in (0, 2):
    alone, alone_metrics = train_population([configs[k]], digits)
    for tree in ('params', 'batch_stats'):
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                   member(getattr(sweep.state, tree), k), member(getattr(alone.state, tree), 0))
    np.testing.assert_allclose(sweep_metrics['val_loss'][k], alone_metrics['val_loss'][0],
                               rtol=1e-5)


def test_a_trial_rerun_alone_reproduces_its_sweep_result(config, digits):
  data, num_classes = digits
  configs = _configs(config, [1e-3, 1e-2, 3e-2, 1e-1])
  sweep = train_trials(configs, [0, 1, 2, 3], data, num_classes, 0, max_parallel=4)
  alone = train_trials(configs[2:3], [2], data, num_classes, 0, max_parallel=4)
  for metric in ('val_loss', 'val_accuracy', 'test_accuracy', 'train_loss'):
    np.testing.assert_allclose(sweep[2].value(metric), alone[0].value(metric), rtol=1e-5)


def test_a_shared_seed_draws_the_same_initialization_as_per_member_seeds(config, digits):
  # The shared seed's draw is made once and broadcast; each member's init_scale still applies.
  data, num_classes = digits
  configs = [space.with_overrides(config, {'model.init_scale': s}) for s in (1.0, 2.0, 4.0, 1.0)]
  create = lambda seed, **kw: create_population(configs, [0, 1, 2, 3], data, num_classes,
                                                   seed=seed, **kw)
  shared, own = create(3), create(3, member_seeds=[3] * 4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               jax.device_get(shared.state), jax.device_get(own.state))
  kernel = np.asarray(shared.state.params['Dense_0']['kernel'])
  np.testing.assert_allclose(kernel[1], np.sqrt(2) * kernel[0], rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(kernel[3], kernel[0])
  other = np.asarray(create(4).state.params['Dense_0']['kernel'])
  assert not np.allclose(other[0], kernel[0])


def test_perturbing_one_member_leaves_the_others_bit_identical(config, digits):
  base, _ = train_population(_configs(config, [1e-3, 1e-2, 3e-2]), digits, epochs=2)
  perturbed, _ = train_population(_configs(config, [1e-3, 1e2, 3e-2]), digits, epochs=2)
  for k in (0, 2):
    for tree in ('params', 'batch_stats'):
      jax.tree.map(np.testing.assert_array_equal, member(getattr(base.state, tree), k),
                   member(getattr(perturbed.state, tree), k))
  assert not np.array_equal(base.state.params['Dense_0']['kernel'][1],
                            perturbed.state.params['Dense_0']['kernel'][1])


def test_a_diverging_member_is_frozen_and_reported(config, digits):
  population, metrics = train_population(_configs(config, [1e-2, 1e9, 3e-2]), digits, epochs=2)
  np.testing.assert_array_equal(metrics['diverged'], [False, True, False])
  assert np.asarray(population.state.diverged_epoch).tolist() == [-1, 0, -1]
  assert all(np.isfinite(a).all() for a in jax.tree.leaves(member(population.state.params, 1)))
  assert np.isfinite(metrics['val_loss'][[0, 2]]).all()


def test_bn_at_test_time_uses_running_averages(config, digits):
  data, num_classes = digits
  population, _ = train_population(_configs(config, [1e-2]), digits, epochs=2)
  state = member(population.state, 0)
  model = models.make_model(population.spec.static.model, num_classes, state.model_hparams)
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  x = data['x_val'][:16]
  full = model.apply(variables, x, train=False)
  one_by_one = jnp.concatenate([model.apply(variables, x[i:i + 1], train=False)
                                for i in range(len(x))])
  np.testing.assert_allclose(full, one_by_one, rtol=1e-5, atol=1e-5)
  # In training mode the same example is normalized by its batch: outputs depend on the batch.
  train_full, _ = model.apply(variables, x, train=True, mutable=['batch_stats'])
  assert not np.allclose(train_full, full, atol=1e-3)


def test_buckets_group_by_static_settings_and_chunks_respect_max_parallel(config):
  configs = [space.with_overrides(config, {'model.widths': w, 'optimizer.learning_rate': lr})
             for w in ((8,), (16, 16)) for lr in (0.1, 0.01, 0.001)]
  assert member_lib.buckets(configs) == [[0, 1, 2], [3, 4, 5]]
  assert population_lib.chunks(list(range(10)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
  assert all(len(c) <= 4 for c in population_lib.chunks(list(range(9)), 4))


def test_train_trials_pads_chunks_and_returns_results_in_order(config, digits):
  data, num_classes = digits
  configs = _configs(config, [1e-2, 3e-2, 1e-1])
  results = train_trials(configs, [7, 8, 9], data, num_classes, 0, max_parallel=2)
  assert [r.trial for r in results] == [7, 8, 9]
  assert all(r.status == 'ok' and len(r.history) == config.train.epochs for r in results)
  alone = train_trials(configs[2:], [9], data, num_classes, 0, max_parallel=2)
  np.testing.assert_allclose(results[2].value('val_loss'), alone[0].value('val_loss'), rtol=1e-5)


def test_training_compiles_the_three_programs_and_nothing_else(config, monkeypatch):
  # Each eager op outside them (jnp.asarray, a slice of a device array) is an XLA compile of its
  # own, 0.01-0.05 s each on CPU (BENCHMARKS.md, engine change 14).
  compiled = []

  def listen(event, seconds, fun_name='', **kwargs):
    del seconds, kwargs
    if event == '/jax/core/compile/backend_compile_duration':
      compiled.append(fun_name)

  # Earlier tests may have compiled the same programs and eager ops already, and kept them.
  monkeypatch.setattr(executables, '_folder', None)
  programs.compile_programs.cache_clear()
  jax.clear_caches()
  jax.extend.backend.clear_in_memory_compilation_cache()
  jax.monitoring.register_event_duration_secs_listener(listen)
  try:
    data, num_classes = data_lib.load(config.dataset)
    results = train_trials(_configs(config, [1e-2, 3e-2]), [0, 1], data, num_classes, 0,
                                  max_parallel=2)
  finally:
    jax.monitoring.unregister_event_duration_listener(listen)
  assert all(r.status == 'ok' for r in results)
  assert len(compiled) == 3, compiled  # init, epoch and test


def test_member_block_holds_the_block_bytes(monkeypatch):
  monkeypatch.setattr(programs, 'BLOCK_BYTES', 4 * 2**20)
  mib = 2**20
  assert programs.member_block(256, mib, 'cpu') == 4
  assert programs.member_block(62, mib, 'cpu') == 4  # The last block is filled up (in_blocks).
  assert programs.member_block(256, 64 * mib, 'cpu') == programs.MIN_MEMBERS
  assert programs.member_block(16, 1024, 'cpu') == 16  # Small members: all in one block.
  assert programs.member_block(256, mib, 'gpu') == 256  # Only CPU caches are blocked for.


@pytest.fixture
def blocks_of_two(monkeypatch):
  """Programs compiled in this test run their members two at a time (programs.in_blocks)."""
  programs.compile_programs.cache_clear()
  monkeypatch.setattr(programs, 'BLOCK_BYTES', 1)
  yield
  programs.compile_programs.cache_clear()  # Drop the blocked programs before the next test.


def test_members_trained_in_blocks_equal_members_trained_in_one_vmap(config, digits):
  # 7 members in blocks of 2: the fourth block is filled up with a copy of member 0.
  configs = _configs(config, [1e-2, 3e-2, 1e-1, 3e-1, 1e9, 1.0, 2e-1],
                     **{'optimizer.name': 'momentum', 'model.bn_momentum': 0.8})
  whole, whole_metrics = train_population(configs, digits, epochs=2)
  assert whole.programs.block == len(configs)
  programs.compile_programs.cache_clear()
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(programs, 'BLOCK_BYTES', 1)
    blocked, blocked_metrics = train_population(configs, digits, epochs=2)
  programs.compile_programs.cache_clear()
  assert blocked.programs.block == programs.MIN_MEMBERS
  np.testing.assert_array_equal(blocked_metrics['diverged'], [0, 0, 0, 0, 1, 0, 0])
  healthy = [0, 1, 2, 3, 5, 6]
  for k in healthy:  # The member diverging in block 2 leaves its block-mate alone.
    for tree in ('params', 'batch_stats'):
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                   member(getattr(blocked.state, tree), k), member(getattr(whole.state, tree), k))
  for name in ('val_loss', 'val_accuracy', 'train_loss'):
    np.testing.assert_allclose(blocked_metrics[name][healthy], whole_metrics[name][healthy],
                               rtol=1e-5)


def test_blocked_members_with_their_own_seeds_keep_their_own_data_order(config, digits,
                                                                         blocks_of_two):
  data, num_classes = digits
  configs = _configs(config, [3e-2] * 4, **{'optimizer.name': 'sgd'})
  population = create_population(configs, [0, 1, 2, 3], data, num_classes, seed=0,
                                   member_seeds=[5, 6, 5, 6])
  assert population.programs.block == 2
  metrics = population.run_epoch(data)
  # Members 0 and 2 (seed 5) sit in different blocks, as do 1 and 3 (seed 6).
  np.testing.assert_array_equal(metrics['val_loss'][[0, 1]], metrics['val_loss'][[2, 3]])
  assert metrics['val_loss'][0] != metrics['val_loss'][1]


def test_a_trial_rerun_alone_repeats_its_blocked_sweep_member_bit_for_bit(config, digits,
                                                                          blocks_of_two):
  # Adam, whose normalization would turn any float difference into lr-sized steps: a member
  # computes in a block of 2 in the sweep of 5 (the last block filled up) and alone.
  configs = _configs(config, [1e-3, 1e-2, 3e-2, 1e-1, 3e-3], **{'optimizer.name': 'adam'})
  sweep, sweep_metrics = train_population(configs, digits, epochs=2)
  for k in (2, 4):
    alone, alone_metrics = train_population([configs[k]] * programs.MIN_MEMBERS, digits, epochs=2)
    for tree in ('params', 'batch_stats', 'opt_state'):
      jax.tree.map(np.testing.assert_array_equal, member(getattr(sweep.state, tree), k),
                   member(getattr(alone.state, tree), 0))
    assert sweep_metrics['val_loss'][k] == alone_metrics['val_loss'][0]


def test_refill_starts_new_trials_in_place_without_recompiling_or_touching_the_others(config,
                                                                                     digits):
  data, num_classes = digits
  configs = _configs(config, [1e-3, 1e-2, 3e-2, 1e-1])
  base = create_population(configs, [0, 1, 2, 3], data, num_classes)
  refilled = create_population(configs, [0, 1, 2, 3], data, num_classes)
  new_config = _configs(config, [3e-3])[0]
  fresh = create_population([new_config] * 4, [4] * 4, data, num_classes)  # Same program.
  for population in (base, refilled):
    population.run_epoch(data)
  compiled = programs.compile_programs.cache_info().misses
  (retired,) = refilled.records(data, [1])
  refilled.refill([1], [new_config], [{'optimizer.learning_rate': 3e-3}], [4], data)
  for tree in ('params', 'batch_stats', 'opt_state'):  # A fresh member of the new setting.
    jax.tree.map(np.testing.assert_array_equal, member(getattr(refilled.state, tree), 1),
                 member(getattr(fresh.state, tree), 0))
  for population in (base, refilled):
    population.run_epoch(data)
  assert programs.compile_programs.cache_info().misses == compiled
  for k in (0, 2, 3):  # The others go on bit for bit as if nothing happened.
    jax.tree.map(np.testing.assert_array_equal, member(base.state, k), member(refilled.state, k))
  new, kept = refilled.records(data, [1, 0])
  assert (retired.trial, retired.epochs) == (1, 1) and (kept.trial, kept.epochs) == (0, 2)
  assert (new.trial, new.epochs, new.setting) == (4, 1, {'optimizer.learning_rate': 3e-3})
  assert [row['epoch'] for row in new.history] == [1]
  assert new.history[0]['val_loss'] == refilled.history[1]['val_loss'][1]


def test_copy_state_copies_training_state_but_not_the_record(config, digits):
  data, num_classes = digits
  population, _ = train_population(_configs(config, [1e-3, 1e-2, 3e-2]), digits)
  population.settings = [{'optimizer.learning_rate': lr} for lr in (1e-3, 1e-2, 3e-2)]
  before = member(population.state, 2)
  population.copy_state(np.array([2, 1, 2]))
  jax.tree.map(np.testing.assert_array_equal, member(population.state, 0), before)
  assert population.trials.tolist() == [0, 1, 2]
  assert population.settings[0] == {'optimizer.learning_rate': 1e-3}
  assert population.records(data, [0])[0].history[0]['val_loss'] == (
      population.history[0]['val_loss'][0])
