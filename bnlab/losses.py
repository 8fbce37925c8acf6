"""Softmax, one-hot and categorical cross-entropy from their formulas, with the hand gradient.

The member layer trains with optax's fused `softmax_cross_entropy_with_integer_labels`; these are the
course's derivation written out, and the tests prove the two agree (values and gradients).

For logits z of one example over C classes and a one-hot label y:
    y_hat_j = exp(z_j) / sum_k exp(z_k)           (softmax)
    L(y_hat, y) = -sum_j y_j log y_hat_j           (categorical cross-entropy)
    dL/dz = y_hat - y                              (the hand gradient, per example)
and the cost J is the mean of L over the m examples, so dJ/dz = (y_hat - y) / m.
"""

import jax
import jax.numpy as jnp


def one_hot(labels: jax.Array, num_classes: int) -> jax.Array:
  """Integer labels (m,) -> (m, C) rows with a single 1 at the label."""
  return (labels[..., None] == jnp.arange(num_classes)).astype(jnp.float32)


def log_softmax(z: jax.Array) -> jax.Array:
  """log y_hat, computed as z - max - log sum exp(z - max): no exp of a large number overflows."""
  shifted = z - jnp.max(z, -1, keepdims=True)
  return shifted - jnp.log(jnp.sum(jnp.exp(shifted), -1, keepdims=True))


def softmax(z: jax.Array) -> jax.Array:
  """exp(z_j) / sum_k exp(z_k), with the max subtracted first (the ratio is unchanged)."""
  shifted = jnp.exp(z - jnp.max(z, -1, keepdims=True))
  return shifted / jnp.sum(shifted, -1, keepdims=True)


def cross_entropy(z: jax.Array, y: jax.Array) -> jax.Array:
  """L = -sum_j y_j log y_hat_j per example, from logits z and one-hot (or soft) labels y."""
  return -jnp.sum(y * log_softmax(z), -1)


def cost(z: jax.Array, y: jax.Array) -> jax.Array:
  """J = 1/m sum_i L_i: the mean cross-entropy over the batch."""
  return jnp.mean(cross_entropy(z, y))


def cross_entropy_grad(z: jax.Array, y: jax.Array) -> jax.Array:
  """dL/dz = y_hat - y for each example: the gradient of `cross_entropy`, derived by hand."""
  return softmax(z) - y
