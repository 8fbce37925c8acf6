"""DenseNet (bnlab.densenet): shapes, concatenation, the BN-ReLU-conv order and the transition
against references written out here, every norm, per-member BN momentum in a vmapped sweep, and
the bad-input table of its fields."""

import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bnlab import checks
from bnlab import densenet
from bnlab import models
from bnlab import space
from tests import test_models
from tests.conftest import ROOT
from tests.conftest import member
from tests.conftest import train_population

HPARAMS = {'bn_momentum': 0.9, 'bn_epsilon': 1e-5, 'init_scale': 1.0}


def _model_config(config, **overrides):
  fields = {'model.name': 'densenet', 'model.widths': (4, 8), 'model.depth': 2,
            'model.growth_rate': 4, 'model.groups': 2}
  fields.update({f'model.{k}': v for k, v in overrides.items()})
  return space.with_overrides(config, fields).model


def _factories(norm='batch', momentum=0.9):
  """The conv and norm factories DenseNet hands its blocks, built from bnlab's layers."""
  def conv(width, size, strides):
    return models.conv_layer(width, size, strides, bias=norm == 'none', init_scale=1.0)

  return conv, lambda: models.Norm(norm, momentum, 1e-5, 2)


def _images(shape=(3, 8, 8, 4), seed=1):
  return jax.random.normal(jax.random.key(seed), shape)


def test_every_norm_is_injected_into_every_layer_and_transition(config):
  x = _images((3, 8, 8, 1))
  for norm, kind in models.NORMS.items():
    model = models.make_model(_model_config(config, norm=norm), 10, HPARAMS)
    variables, logits, updates = test_models.abstract_init_apply(model, x)
    assert logits.shape == (3, 10)
    assert bool(updates) == bool(variables.get('batch_stats')) == kind.running_averages
    built = kind.factory(train=True, momentum=0.9, epsilon=1e-5, groups=2, ndim=x.ndim)()
    params = variables['params']
    holders = [params['Transition_0'], params]  # The transition's norm and the final one.
    holders += [params[f'DenseBlock_{b}'][f'DenseLayer_{k}'] for b in (0, 1) for k in (0, 1)]
    for holder in holders:
      assert list(holder.get('Norm_0', {})) == ([] if norm == 'none' else
                                                [f'{type(built).__name__}_0'])


@pytest.mark.parametrize('depth,growth', [(1, 3), (3, 5)])
def test_a_block_concatenates_its_input_and_each_layers_growth(depth, growth):
  conv, norm = _factories()
  block = densenet.DenseBlock(depth, growth, conv, norm, nn.relu)
  x = _images()
  y, _ = jax.jit(lambda x: block.init_with_output(jax.random.key(0), x, train=False))(x)
  assert y.shape == (*x.shape[:3], x.shape[3] + depth * growth)
  np.testing.assert_array_equal(y[..., :x.shape[3]], x)  # The input passes through unchanged.


def test_a_dense_layer_is_batch_norm_then_relu_then_conv(config):
  conv, norm = _factories()
  layer = densenet.DenseLayer(5, conv, norm, nn.relu)
  x = 3.0 + 2.0 * _images()  # Off zero mean and unit variance, so BN's work shows.
  y, variables = jax.jit(lambda x: layer.init_with_output(jax.random.key(0), x, train=True))(x)
  params = variables['params']
  kernel = params['Conv_0']['kernel']
  assert kernel.shape == (3, 3, 4, 5) and 'Norm_0' in params
  # BN's init (scale 1, bias 0) in training: the batch's own per-channel moments.
  mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
  h = jax.nn.relu((x - mean) / jnp.sqrt(var + 1e-5))
  new = jax.lax.conv_general_dilated(h, kernel, (1, 1), 'SAME',
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  np.testing.assert_allclose(y[..., 4:], new, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('side', [8, 7])
def test_a_transition_is_a_1x1_conv_then_2x2_average_pooling(side):
  conv, norm = _factories('none')
  transition = densenet.Transition(6, conv, norm, lambda v: v)
  x = _images((2, side, side, 4))
  y, variables = jax.jit(
      lambda x: transition.init_with_output(jax.random.key(0), x, train=False))(x)
  params = variables['params']['Conv_0']
  z = x @ params['kernel'][0, 0] + params['bias']
  if side % 2:  # 'SAME' pooling of an odd side: the last row and column average alone.
    z = jnp.pad(z, ((0, 0), (0, 1), (0, 1), (0, 0)), mode='edge')
  half = (side + 1) // 2
  pooled = z.reshape(2, half, 2, half, 2, 6).mean((2, 4))
  assert y.shape == (2, half, half, 6)
  np.testing.assert_allclose(y, pooled, rtol=1e-5, atol=1e-6)


def test_stages_halve_the_resolution_and_set_the_widths(config):
  model = models.make_model(_model_config(config, widths=(4, 6, 8)), 10, HPARAMS)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), _images((1, 8, 8, 1)),
                                                train=False))
  params = variables['params']
  # Stage k enters with widths[k] channels and leaves with widths[k] + depth * growth_rate.
  assert params['Transition_0']['Conv_0']['kernel'].shape == (1, 1, 4 + 2 * 4, 6)
  assert params['Transition_1']['Conv_0']['kernel'].shape == (1, 1, 6 + 2 * 4, 8)
  assert params['Dense_0']['kernel'].shape == (8 + 2 * 4, 10)


def test_each_member_keeps_its_own_bn_momentum_and_equals_its_setting_alone(config, digits):
  configs = [space.with_overrides(config, {
      'model.name': 'densenet', 'model.widths': (4, 8), 'model.depth': 1,
      'model.growth_rate': 4, 'optimizer.name': 'sgd', 'optimizer.learning_rate': 0.1,
      'model.bn_momentum': m}) for m in (0.9, 0.5)]
  sweep_pop, sweep_metrics = train_population(configs, digits)
  alone_pop, alone_metrics = train_population(configs[1:], digits)
  for tree in ('params', 'batch_stats'):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5),
                 member(getattr(sweep_pop.state, tree), 1),
                 member(getattr(alone_pop.state, tree), 0))
  np.testing.assert_allclose(sweep_metrics['val_loss'][1], alone_metrics['val_loss'][0],
                             rtol=1e-5)
  # BN momentum does not change training, only the running averages: each member used its own.
  stats = sweep_pop.state.batch_stats['Norm_0']['BatchNorm_0']['mean']
  assert not np.allclose(stats[0], stats[1], atol=1e-3)


@pytest.mark.parametrize('overrides,message', [
    ({'model.growth_rate': 0}, 'model.growth_rate=0 must be a int >= 1'),
    ({'model.norm': 'group', 'model.groups': 4, 'model.growth_rate': 6},
     "model.groups=4 must divide model.growth_rate=6 (model.name='densenet' adds growth_rate "
     'channels per layer); valid: 1, 2'),
    ({'model.norm': 'group', 'model.groups': 3, 'model.growth_rate': 6},
     'model.groups=3 must divide every width of model.widths=(16, 16); valid: 1, 2, 4, 8, 16'),
    ({'model.name': 'densnet'}, "model.name='densnet' is not one of: mlp, cnn, resnet, densenet"),
])
def test_bad_densenet_fields_are_refused_in_one_line(config, overrides, message):
  bad = space.with_overrides(config, {'model.name': 'densenet', **overrides})
  with pytest.raises(checks.ConfigError) as error:
    checks.check_config(bad)
  assert str(error.value) == message and '\n' not in str(error.value)


def test_launch_refuses_a_bad_growth_rate_with_exit_2(tmp_path):
  workdir = tmp_path / 'w'
  done = subprocess.run(
      [sys.executable, 'launch.py', '--config=configs/default.py', '--config.model.name=densenet',
       '--config.model.growth_rate=-3', f'--workdir={workdir}'],
      cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ))
  said = [line for line in done.stderr.splitlines() if line.strip()]
  assert done.returncode == 2
  assert said == ['error: model.growth_rate=-3 must be a int >= 1'], said
  assert not workdir.exists()
