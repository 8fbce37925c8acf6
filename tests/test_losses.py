"""Softmax, one-hot and cross-entropy by their formulas against optax, jax.nn and jax.grad."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bnlab import losses


def _batch(m=16, classes=10, scale=3.0):
  kz, ky = jax.random.split(jax.random.key(0))
  return scale * jax.random.normal(kz, (m, classes)), jax.random.randint(ky, (m,), 0, classes)


def test_softmax_and_one_hot_match_jax():
  z, labels = _batch()
  np.testing.assert_allclose(losses.softmax(z), jax.nn.softmax(z), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(losses.softmax(z).sum(-1), 1, rtol=1e-6)
  np.testing.assert_array_equal(losses.one_hot(labels, 10), jax.nn.one_hot(labels, 10))


def test_cross_entropy_matches_optax_fused_loss():
  z, labels = _batch()
  y = losses.one_hot(labels, 10)
  np.testing.assert_allclose(losses.cross_entropy(z, y),
                             optax.softmax_cross_entropy_with_integer_labels(z, labels),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(losses.cross_entropy(z, y), optax.softmax_cross_entropy(z, y),
                             rtol=1e-5, atol=1e-6)
  # The definition: minus the log of the probability given to the true class.
  np.testing.assert_allclose(losses.cross_entropy(z, y),
                             -np.log(np.asarray(jax.nn.softmax(z))[np.arange(16), labels]),
                             rtol=1e-4)


def test_hand_gradient_is_y_hat_minus_y():
  z, labels = _batch()
  y = losses.one_hot(labels, 10)
  m = z.shape[0]
  by_hand = losses.cross_entropy_grad(z, y) / m  # dJ/dz for the mean cost J.
  np.testing.assert_allclose(jax.grad(losses.cost)(z, y), by_hand, rtol=1e-5, atol=1e-7)
  engine_loss = lambda z: optax.softmax_cross_entropy_with_integer_labels(z, labels).mean()
  np.testing.assert_allclose(jax.grad(engine_loss)(z), by_hand, rtol=1e-5, atol=1e-7)


def test_softmax_and_cross_entropy_are_stable_for_huge_logits():
  z = jnp.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0], [1000.0, 1000.0, -1000.0]])
  y = losses.one_hot(jnp.array([1, 0, 0]), 3)
  np.testing.assert_allclose(losses.softmax(z), [[1, 0, 0], [1 / 3] * 3, [0.5, 0.5, 0]],
                             rtol=1e-6, atol=1e-30)
  ce = losses.cross_entropy(z, y)
  assert np.isfinite(ce).all()
  np.testing.assert_allclose(ce, [2000.0, np.log(3), np.log(2)], rtol=1e-6)
  np.testing.assert_allclose(ce, optax.softmax_cross_entropy(z, y), rtol=1e-6)
  np.testing.assert_allclose(losses.cross_entropy_grad(z, y), jax.grad(
      lambda z: losses.cross_entropy(z, y).sum())(z), atol=1e-6)
