"""Batch norm by hand against jax.grad and Flax; layer/instance/group norm against definitions."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bnlab import models
from bnlab import norms

SHAPES = [(2, 3), (32, 5), (4, 6, 6, 3)]  # m = 2, a dense batch, and images with a channel axis.
EPS = 1e-5


def _inputs(shape, seed=0):
  kx, kg, kb, ky = jax.random.split(jax.random.key(seed), 4)
  n = shape[-1]
  x = 3.0 * jax.random.normal(kx, shape) + 1.5
  gamma = 1.0 + 0.5 * jax.random.normal(kg, (n,))
  beta = jax.random.normal(kb, (n,))
  return x, gamma, beta, jax.random.normal(ky, shape)


def _flax_bn(x, gamma, beta, train, momentum=0.9, stats=None):
  """Flax's BatchNorm applied with our gamma/beta; returns (y, new batch_stats)."""
  module = nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=EPS)
  n = x.shape[-1]
  stats = stats or {'mean': jnp.zeros(n), 'var': jnp.ones(n)}
  variables = {'params': {'scale': gamma, 'bias': beta}, 'batch_stats': stats}
  y, updates = module.apply(variables, x, mutable=['batch_stats'])
  return y, updates['batch_stats']


@pytest.mark.parametrize('shape', SHAPES)
def test_forward_matches_the_formula_and_flax(shape):
  x, gamma, beta, _ = _inputs(shape)
  y, cache = norms.batch_norm_forward(x, gamma, beta, EPS)
  xs = np.asarray(x, np.float64).reshape(-1, shape[-1])  # Every value of a feature is a row.
  mu, var = xs.mean(0), xs.var(0)
  np.testing.assert_allclose(cache.mu, mu, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(cache.var, var, rtol=1e-5)
  expected = np.asarray(gamma) * (xs - mu) / np.sqrt(var + EPS) + np.asarray(beta)
  np.testing.assert_allclose(y.reshape(-1, shape[-1]), expected, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(y, _flax_bn(x, gamma, beta, train=True)[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('shape', SHAPES)
def test_hand_backward_matches_autodiff_and_flax(shape):
  x, gamma, beta, dy = _inputs(shape)
  _, cache = norms.batch_norm_forward(x, gamma, beta, EPS)
  hand = norms.batch_norm_backward(dy, cache)
  _, autodiff_vjp = jax.vjp(lambda *a: norms.batch_norm_forward(*a, EPS)[0], x, gamma, beta)
  _, flax_vjp = jax.vjp(lambda *a: _flax_bn(*a, train=True)[0], x, gamma, beta)
  for reference in (autodiff_vjp(dy), flax_vjp(dy)):
    for ours, theirs in zip(hand, reference):
      np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
  # The gradient through mu and sigma2 sums to zero over the batch: shifting x changes nothing.
  np.testing.assert_allclose(hand[0].sum(norms.batch_axes(x)), 0, atol=1e-4)


def test_the_custom_vjp_backward_is_the_hand_derivation():
  x, gamma, beta, dy = _inputs((8, 4))
  _, vjp = jax.vjp(lambda *a: models.scratch_batch_norm(*a, EPS), x, gamma, beta)
  _, cache = norms.batch_norm_forward(x, gamma, beta, EPS)
  for through_vjp, hand in zip(vjp(dy), norms.batch_norm_backward(dy, cache)):
    np.testing.assert_array_equal(through_vjp, hand)


@pytest.mark.parametrize('shape', SHAPES)
def test_running_averages_and_inference_match_flax(shape):
  x, gamma, beta, _ = _inputs(shape)
  momentum = 0.8
  stats = {'mean': jnp.full(shape[-1], 0.3), 'var': jnp.full(shape[-1], 2.0)}
  _, flax_stats = _flax_bn(x, gamma, beta, True, momentum, stats)
  _, cache = norms.batch_norm_forward(x, gamma, beta, EPS)
  np.testing.assert_allclose(norms.update_running(stats['mean'], cache.mu, momentum),
                             flax_stats['mean'], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(norms.update_running(stats['var'], cache.var, momentum),
                             flax_stats['var'], rtol=1e-5)
  y = norms.batch_norm_inference(x, gamma, beta, flax_stats['mean'], flax_stats['var'], EPS)
  np.testing.assert_allclose(y, _flax_bn(x, gamma, beta, False, stats=flax_stats)[0],
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('shape', SHAPES)
def test_scratch_module_is_a_drop_in_for_flax_batchnorm(shape):
  x, _, _, dy = _inputs(shape)
  momentum = jnp.float32(0.7)  # A traced-friendly array, as in a vmapped sweep.
  ours = models.ScratchBatchNorm(use_running_average=False, momentum=momentum, epsilon=EPS)
  theirs = nn.BatchNorm(use_running_average=False, momentum=momentum, epsilon=EPS)
  variables = theirs.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x)) == jax.tree.map(
      jnp.shape, variables)

  def run(module, params):
    y, updates = module.apply({**variables, 'params': params}, x, mutable=['batch_stats'])
    return jnp.vdot(y, dy), (y, updates['batch_stats'])

  (_, (y1, s1)), g1 = jax.value_and_grad(run, 1, has_aux=True)(ours, variables['params'])
  (_, (y2, s2)), g2 = jax.value_and_grad(run, 1, has_aux=True)(theirs, variables['params'])
  for a, b in [(y1, y2), (s1, s2), (g1, g2)]:
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5), a, b)
  y1, y2 = (m.clone(use_running_average=True).apply({**variables, 'batch_stats': s1}, x)
            for m in (ours, theirs))
  np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-5)


def test_pooled_moments_are_the_population_moments():
  x = np.asarray(_inputs((6, 10, 4))[0])  # 6 batches of 10 examples, 4 features.
  mean, var = norms.pooled_moments(x.mean(1), x.var(1))
  np.testing.assert_allclose(mean, x.reshape(-1, 4).mean(0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(var, x.reshape(-1, 4).var(0), rtol=1e-4)


@pytest.mark.parametrize('groups', [1, 2, 4])
def test_group_norm_matches_its_definition_and_flax(groups):
  x, gamma, beta, _ = _inputs((3, 5, 5, 4))
  xs = np.asarray(x, np.float64).reshape(3, 5, 5, groups, 4 // groups)
  z = (xs - xs.mean((1, 2, 4), keepdims=True)) / np.sqrt(xs.var((1, 2, 4), keepdims=True) + EPS)
  expected = z.reshape(x.shape) * np.asarray(gamma) + np.asarray(beta)
  y = norms.group_norm(x, gamma, beta, groups, EPS)
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
  flax = nn.GroupNorm(num_groups=groups, epsilon=EPS).apply(
      {'params': {'scale': gamma, 'bias': beta}}, x)
  np.testing.assert_allclose(y, flax, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('shape', [(3, 5, 5, 4), (6, 7)])
def test_layer_norm_is_one_group_and_matches_its_definition(shape):
  x, gamma, beta, _ = _inputs(shape)
  y = norms.layer_norm(x, gamma, beta, EPS)
  xs = np.asarray(x, np.float64).reshape(shape[0], -1)
  z = ((xs - xs.mean(1, keepdims=True)) / np.sqrt(xs.var(1, keepdims=True) + EPS)).reshape(shape)
  np.testing.assert_allclose(y, z * np.asarray(gamma) + np.asarray(beta), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(y, norms.group_norm(x, gamma, beta, 1, EPS), rtol=1e-5, atol=1e-5)
  norm = models.Norm('layer', epsilon=EPS)  # The models' layer norm: the same definition.
  variables = {'params': {'LayerNorm_0': {'scale': gamma, 'bias': beta}}}
  np.testing.assert_allclose(norm.apply(variables, x, False), y, rtol=1e-4, atol=1e-5)


def test_instance_norm_is_one_channel_per_group_and_matches_its_definition():
  x, gamma, beta, _ = _inputs((3, 5, 5, 4))
  y = norms.instance_norm(x, gamma, beta, EPS)
  xs = np.asarray(x, np.float64)
  z = (xs - xs.mean((1, 2), keepdims=True)) / np.sqrt(xs.var((1, 2), keepdims=True) + EPS)
  np.testing.assert_allclose(y, z * np.asarray(gamma) + np.asarray(beta), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(y, norms.group_norm(x, gamma, beta, 4, EPS), rtol=1e-5, atol=1e-5)
  norm = models.Norm('instance', epsilon=EPS)
  variables = {'params': {'GroupNorm_0': {'scale': gamma, 'bias': beta}}}
  np.testing.assert_allclose(norm.apply(variables, x, False), y, rtol=1e-4, atol=1e-5)
