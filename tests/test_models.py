"""Models and BN modes under the vmapped member layer: scratch BN trains like Flax's, CNN/ResNet members
equal their settings trained alone, precise/batch evaluation, the norm registry (every norm
builds where its check allows it, its factory is the library module it names), and the
bad-input table."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bnlab import checks
from bnlab import member as member_lib
from bnlab import models
from bnlab import space
from bnlab import sweep
from tests.conftest import member
from tests.conftest import train_population
from tests.conftest import train_trials


def abstract_init_apply(model, x):
  """(variables, logits, batch_stats updates) of `model` on `x`, as shapes and variable trees
  only (jax.eval_shape): building every model x norm eagerly took ~20 s."""
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x[:1], train=False))
  logits, updates = jax.eval_shape(
      lambda v: model.apply(v, x, train=True, mutable=['batch_stats']), variables)
  return variables, logits, updates


def _assert_trees_close(a, b, rtol, atol):
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=rtol, atol=atol), a, b)


def _by_path(tree):
  """Leaves keyed by path, bnlab's ScratchBatchNorm under the name of Flax's BatchNorm."""
  return {jax.tree_util.keystr(p).replace('ScratchBatchNorm', 'BatchNorm'): a
          for p, a in jax.tree_util.tree_leaves_with_path(tree)}


def test_scratch_batch_norm_trains_like_flax_batch_norm(config, digits):
  # Two members with their own BN momentum in one program: momentum is per-member for both.
  # Heavy-ball momentum, not Adam: the gradient of a weight whose input is constant within a
  # batch is exactly zero before BN only in exact arithmetic; both BNs leave ~1e-9 of float
  # noise there, different noise, and Adam scales noise to lr-sized steps (measured: val loss
  # 1e-3 relative apart after one epoch at lr 1e-3; 1e-7 with momentum).
  setting = {'optimizer.name': 'momentum', 'optimizer.learning_rate': 0.05}
  runs = {}
  for norm in ('batch', 'batch_scratch'):
    configs = [space.with_overrides(config, {**setting, 'model.norm': norm,
                                             'model.bn_momentum': m}) for m in (0.9, 0.5)]
    runs[norm] = train_population(configs, digits, epochs=3)
  (flax_pop, flax_metrics), (ours_pop, ours_metrics) = runs['batch'], runs['batch_scratch']
  np.testing.assert_allclose(ours_metrics['val_loss'], flax_metrics['val_loss'], rtol=1e-5)
  for tree in ('params', 'batch_stats'):
    ours, theirs = (_by_path(getattr(p.state, tree)) for p in (ours_pop, flax_pop))
    assert ours.keys() == theirs.keys()
    _assert_trees_close(ours, theirs, rtol=1e-4, atol=1e-5)
  # The two members' running averages differ: each used its own momentum.
  stats = ours_pop.state.batch_stats['Norm_0']['ScratchBatchNorm_0']['mean']
  assert not np.allclose(stats[0], stats[1], atol=1e-3)


@pytest.mark.parametrize('name,norm', [('cnn', 'batch_scratch'), ('resnet', 'batch')])
def test_a_conv_member_of_a_sweep_equals_the_setting_trained_alone(config, digits, name, norm):
  # Vmapped over members, convolutions with per-member kernels become grouped convolutions.
  configs = [space.with_overrides(config, {
      'model.name': name, 'model.norm': norm, 'model.widths': (8, 8), 'model.depth': 1,
      'optimizer.name': 'sgd', 'optimizer.learning_rate': lr}) for lr in (0.05, 0.2)]
  sweep_pop, sweep_metrics = train_population(configs, digits)
  alone_pop, alone_metrics = train_population(configs[1:], digits)
  for tree in ('params', 'batch_stats'):
    _assert_trees_close(member(getattr(sweep_pop.state, tree), 1),
                        member(getattr(alone_pop.state, tree), 0), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(sweep_metrics['val_loss'][1], alone_metrics['val_loss'][0],
                             rtol=1e-5)


def _loss_and_grads(model_config, hparams, x, y):
  """One training-mode loss and gradient, as train_step computes them."""
  model = models.make_model(model_config, 10, hparams)
  variables = model.init(jax.random.key(0), x[:1], train=False)

  def loss_fn(params):
    logits, _ = model.apply({**variables, 'params': params}, x, train=True,
                            mutable=['batch_stats'])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  return jax.value_and_grad(loss_fn)(variables['params'])


@pytest.mark.parametrize('kind', models.NORMS)
def test_every_norm_layer_gives_each_vmapped_member_its_own_result(kind):
  # Members differ in params, epsilon and momentum; the input is shared (the first layer) or
  # per member (deeper layers), as in a vmapped population.
  x = jax.random.normal(jax.random.key(1), (2, 6, 5, 5, 4))
  hparams = {'momentum': jnp.array([0.9, 0.5]), 'epsilon': jnp.array([1e-5, 1e-1])}

  def run(hparams, x):
    norm = models.Norm(kind, hparams['momentum'], hparams['epsilon'], groups=2)
    variables = norm.init(jax.random.key(0), x, False)
    params = jax.tree.map(lambda p: p + hparams['momentum'], variables.get('params', {}))
    y, updates = norm.apply({**variables, 'params': params}, x, True, mutable=['batch_stats'])
    return y, updates, jax.grad(lambda p: jnp.sum(jnp.sin(norm.apply(
        {**variables, 'params': p}, x, True, mutable=['batch_stats'])[0])))(params)

  for in_axes, inputs in (((0, None), x[0]), ((0, 0), x)):
    together = jax.jit(jax.vmap(run, in_axes))(hparams, inputs)
    alone = jax.jit(run)(member(hparams, 1), inputs if in_axes[1] is None else inputs[1])
    _assert_trees_close(member(together, 1), alone, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['cnn', 'resnet'])
def test_every_norm_gives_each_vmapped_member_its_own_result(config, digits, name):
  data, _ = digits
  x, y = data['x_train'][:8], data['y_train'][:8]
  hparams = {'bn_momentum': jnp.array([0.9, 0.5]), 'bn_epsilon': jnp.array([1e-5, 1e-3]),
             'init_scale': jnp.array([1.0, 2.0])}
  for norm in models.NORMS:
    model_config = space.with_overrides(config, {
        'model.name': name, 'model.norm': norm, 'model.widths': (4, 8), 'model.groups': 2,
        'model.depth': 1}).model
    run = functools.partial(_loss_and_grads, model_config, x=x, y=y)
    together = jax.jit(jax.vmap(run))(hparams)
    alone = jax.jit(run)(member(hparams, 1))
    _assert_trees_close(member(together, 1), alone, rtol=1e-4, atol=1e-6)


def _mlp_state(config, digits, **overrides):
  data, num_classes = digits
  static = member_lib.static_config(space.with_overrides(config, overrides))
  hparams = jax.tree.map(lambda a: a[0], member_lib.dynamic_hparams([config]))
  spec = member_lib.make_spec(static, num_classes, data['x_train'].shape[0])
  return spec, member_lib.init_member(spec, hparams, 0, data['x_train'])


def test_precise_bn_recomputes_the_population_statistics(config, digits):
  data, _ = digits
  spec, state = _mlp_state(config, digits, **{'model.widths': (8,)})
  x = data['x_train']
  stats = member_lib.precise_batch_stats(spec, state, x)['Norm_0']['BatchNorm_0']
  used = x[:x.shape[0] // spec.static.train.batch_size * spec.static.train.batch_size]
  h = np.asarray(used, np.float64).reshape(used.shape[0], -1) @ np.asarray(
      state.params['Dense_0']['kernel'], np.float64)  # The first BN's input over the set.
  np.testing.assert_allclose(stats['mean'], h.mean(0), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(stats['var'], h.var(0), rtol=1e-4)


def test_batch_statistics_at_evaluation_normalize_by_the_evaluated_batch(config, digits):
  data, _ = digits
  n = 100
  spec, state = _mlp_state(config, digits, **{'train.batch_size': n})
  x, y = data['x_val'][:n], data['y_val'][:n]
  model = models.make_model(spec.static.model, spec.num_classes, state.model_hparams)
  logits, _ = model.apply({'params': state.params, 'batch_stats': state.batch_stats}, x,
                          train=True, mutable=['batch_stats'])
  expected = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  ours = member_lib.evaluate(spec, state, x, y, batch_statistics=True)
  np.testing.assert_allclose(ours['loss'], expected, rtol=1e-5)
  running = member_lib.evaluate(spec, state, x, y)
  assert not np.isclose(running['loss'], ours['loss'], rtol=1e-3)


def test_bn_eval_modes_report_their_gap_to_the_running_averages(config, digits):
  data, num_classes = digits
  configs = [space.with_overrides(config, {'model.bn_eval': mode, 'model.widths': (8,),
                                           'train.epochs': 1})
             for mode in checks.BN_EVALS]
  results = train_trials(configs, [0, 1, 2], data, num_classes, 0, max_parallel=2)
  running = results[0]
  assert 'val_loss_running' not in running.metrics
  assert 'val_loss_running' not in running.history[0]
  for result in results[1:]:  # Training is the same; only the statistics at evaluation differ.
    np.testing.assert_allclose(result.metrics['val_loss_running'], running.metrics['val_loss'],
                               rtol=1e-6)
    np.testing.assert_allclose(result.history[0]['val_accuracy_running'],
                               running.metrics['val_accuracy'], rtol=1e-6)
    np.testing.assert_allclose(result.metrics['train_loss'], running.metrics['train_loss'],
                               rtol=1e-6)
    assert not np.isclose(result.metrics['val_loss'], running.metrics['val_loss'], rtol=1e-4)


@pytest.mark.parametrize('overrides,message', [
    ({'model.norm': 'batchnorm'}, "model.norm='batchnorm' is not one of: batch, batch_scratch, "
                                  'layer, group, instance, none'),
    ({'model.name': 'vgg'}, "model.name='vgg' is not one of: mlp, cnn, resnet, densenet"),
    ({'model.norm': 'group', 'model.groups': 3}, 'model.groups=3 must divide every width of '
                                                 'model.widths=(16, 16); valid: 1, 2, 4, 8, 16'),
    ({'model.norm': 'group', 'model.groups': 0}, 'model.groups=0 must be a int >= 1'),
    ({'model.depth': 0}, 'model.depth=0 must be a int >= 1'),
    ({'model.norm': 'instance'}, "model.norm='instance' needs images (model.name cnn, "
                                 "resnet or densenet): on model.name='mlp' every instance is a "
                                 "single value"),
    ({'model.bn_eval': 'train'}, "model.bn_eval='train' is not one of: running, batch, precise"),
])
def test_bad_model_input_is_one_line_naming_the_field(config, overrides, message):
  config.sweep.space.model.widths = ''
  for field, value in overrides.items():
    section, key = field.split('.')
    config[section][key] = value
  with pytest.raises(checks.ConfigError) as error:
    sweep.prepare(config)
  assert str(error.value) == message


def test_the_registry_lists_the_norms_in_order_and_names_those_with_running_averages():
  assert tuple(models.NORMS) == ('batch', 'batch_scratch', 'layer', 'group', 'instance', 'none')
  assert models.BATCH_NORMS == ('batch', 'batch_scratch')


def _registry_model_config(config, name, norm):
  return space.with_overrides(config, {'model.name': name, 'model.norm': norm,
                                       'model.widths': (4, 8), 'model.groups': 2,
                                       'model.depth': 1}).model


def _allowed(model_config):
  try:
    models.check_norm(model_config)
  except checks.ConfigError:
    return False
  return True


def test_every_registered_norm_builds_on_every_model_its_check_allows(config):
  x = jax.random.normal(jax.random.key(1), (3, 8, 8, 1))
  hparams = {'bn_momentum': 0.9, 'bn_epsilon': 1e-5, 'init_scale': 1.0}
  allowed = set()
  for name in models.MODELS:
    for norm, kind in models.NORMS.items():
      model_config = _registry_model_config(config, name, norm)
      if not _allowed(model_config):
        continue
      allowed.add((name, norm))
      model = models.make_model(model_config, 10, hparams)
      variables, logits, updates = abstract_init_apply(model, x)
      assert logits.shape == (3, 10)
      assert bool(updates) == bool(variables.get('batch_stats')) == kind.running_averages
      # The wrapper keeps the paths: Norm_0/<the factory's module>_0/..., nothing for none.
      built = kind.factory(train=True, momentum=0.9, epsilon=1e-5, groups=2, ndim=x.ndim)()
      inner = variables['params'].get('Norm_0', {})
      assert list(inner) == ([] if norm == 'none' else [f'{type(built).__name__}_0'])
  every = {(name, norm) for name in models.MODELS for norm in models.NORMS}
  assert every - allowed == {('mlp', 'instance')}


@pytest.mark.parametrize('overrides,message', [
    ({'model.norm': 'group', 'model.groups': 3}, 'model.groups=3 must divide every width of '
                                                 'model.widths=(16, 16); valid: 1, 2, 4, 8, 16'),
    ({'model.norm': 'group', 'model.groups': 4, 'model.widths': (4, 6)},
     'model.groups=4 must divide every width of model.widths=(4, 6); valid: 1, 2'),
    ({'model.norm': 'instance'}, "model.norm='instance' needs images (model.name cnn, "
                                 "resnet or densenet): on model.name='mlp' every instance is a "
                                 "single value"),
    ({'model.norm': 'batchnorm'}, "model.norm='batchnorm' is not one of: batch, batch_scratch, "
                                  'layer, group, instance, none'),
])
def test_each_norm_check_rejects_its_bad_input_in_one_line(config, overrides, message):
  model_config = space.with_overrides(config, overrides).model
  with pytest.raises(checks.ConfigError) as error:
    models.check_norm(model_config)
  assert str(error.value) == message and '\n' not in message


@pytest.mark.parametrize('overrides', [
    {'model.norm': 'group', 'model.groups': 8},
    {'model.norm': 'group', 'model.groups': 2, 'model.widths': (4, 6)},
    {'model.norm': 'instance', 'model.name': 'cnn'},
    {'model.norm': 'instance', 'model.name': 'resnet'},
    *({'model.norm': norm} for norm in ('batch', 'batch_scratch', 'layer', 'none')),
])
def test_each_norm_check_accepts_a_good_model_section(config, overrides):
  models.check_norm(space.with_overrides(config, overrides).model)


@pytest.mark.parametrize('kind,train,expected', [
    ('batch', True, nn.BatchNorm(use_running_average=False, momentum=0.8, epsilon=1e-3)),
    ('batch', False, nn.BatchNorm(use_running_average=True, momentum=0.8, epsilon=1e-3)),
    ('batch_scratch', True, models.ScratchBatchNorm(False, momentum=0.8, epsilon=1e-3)),
    ('batch_scratch', False, models.ScratchBatchNorm(True, momentum=0.8, epsilon=1e-3)),
    ('layer', True, nn.LayerNorm(epsilon=1e-3, reduction_axes=(1, 2, 3))),
    ('group', True, nn.GroupNorm(num_groups=2, epsilon=1e-3)),
    ('instance', True, nn.GroupNorm(num_groups=None, group_size=1, epsilon=1e-3)),
])
def test_a_norm_factory_builds_the_library_module_it_wraps(kind, train, expected):
  x = jax.random.normal(jax.random.key(1), (3, 5, 5, 4))
  factory = models.NORMS[kind].factory(train=train, momentum=0.8, epsilon=1e-3, groups=2,
                                       ndim=x.ndim)
  assert factory() == expected
  # Norm is only a name around it: the same variables (one level down) and bit for bit the same
  # output and batch statistics, in training and evaluation.
  variables = expected.init(jax.random.key(0), x)
  variables = jax.tree.map(lambda a: a + jax.random.uniform(jax.random.key(2), a.shape),
                           variables)
  name = f'{type(expected).__name__}_0'
  ours, ours_updates = models.Norm(kind, 0.8, 1e-3, 2).apply(
      {c: {name: v} for c, v in variables.items()}, x, train, mutable=['batch_stats'])
  theirs, theirs_updates = expected.apply(variables, x, mutable=['batch_stats'])
  np.testing.assert_array_equal(ours, theirs)
  theirs_updates = {c: {name: v} for c, v in theirs_updates.items()}
  assert jax.tree.structure(ours_updates) == jax.tree.structure(theirs_updates)
  jax.tree.map(np.testing.assert_array_equal, ours_updates, theirs_updates)


def test_no_norm_is_the_identity_with_no_variables():
  x = jax.random.normal(jax.random.key(1), (3, 5))
  factory = models.NORMS['none'].factory(train=True, momentum=0.8, epsilon=1e-3, groups=2,
                                         ndim=x.ndim)
  np.testing.assert_array_equal(factory()(x), x)
  norm = models.Norm('none')
  assert norm.init(jax.random.key(0), x, True) == {}
  np.testing.assert_array_equal(norm.apply({}, x, True), x)
