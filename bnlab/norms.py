"""Normalization from first principles: pure functions in the course's notation.

Inputs are batch first: (m, n) for dense features, (m, H, W, C) for images. Batch norm takes its
statistics over every axis but the last (the mini-batch, and for images the pixels too), one
mean and variance per feature or channel:

    mu = 1/m sum_i x_i,   sigma2 = 1/m sum_i (x_i - mu)^2   (biased, as in the paper and Flax)
    z_norm = (x - mu) / sqrt(sigma2 + eps),   y = gamma * z_norm + beta

`batch_norm_backward` is the hand derivation, not autodiff; the tests hold it to `jax.grad` and
to Flax's BatchNorm. Layer, instance and group norm differ only in which axes the statistics
run over, per example: all features (layer), each channel's pixels (instance), or each group of
channels with its pixels (group). Every function here computes, none keeps state.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class BatchNormCache(NamedTuple):
  """What the backward pass needs from the forward one (and the running averages use)."""
  z_norm: jax.Array  # (x - mu) / sqrt(sigma2 + eps), the shape of x.
  gamma: jax.Array  # (n,)
  inv_std: jax.Array  # 1 / sqrt(sigma2 + eps), (n,)
  mu: jax.Array  # (n,)
  var: jax.Array  # sigma2, (n,)


def batch_axes(x: jax.Array) -> tuple[int, ...]:
  """The axes batch norm reduces over: all but the last (features / channels)."""
  return tuple(range(x.ndim - 1))


def moments(x: jax.Array, axes: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
  """Mean and biased variance over `axes` (two-pass: subtract the mean, then square)."""
  mu = jnp.mean(x, axes, keepdims=True)
  return mu, jnp.mean(jnp.square(x - mu), axes, keepdims=True)


def batch_norm_forward(x: jax.Array, gamma: jax.Array, beta: jax.Array,
                       eps: float | jax.Array = 1e-5) -> tuple[jax.Array, BatchNormCache]:
  """y = gamma * (x - mu) / sqrt(sigma2 + eps) + beta with mini-batch mu, sigma2; (y, cache)."""
  axes = batch_axes(x)
  mu, var = moments(x, axes)
  inv_std = jax.lax.rsqrt(var + eps)
  z_norm = (x - mu) * inv_std
  y = gamma * z_norm + beta
  squeeze = lambda a: jnp.reshape(a, a.shape[-1:])
  return y, BatchNormCache(z_norm, gamma, squeeze(inv_std), squeeze(mu), squeeze(var))


def batch_norm_backward(dy: jax.Array, cache: BatchNormCache
                        ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The hand-derived gradients (dx, dgamma, dbeta) of batch_norm_forward, given dy = dL/dy.

  With m the number of values per feature (batch times pixels) and dz = dy * gamma:
    dbeta = sum dy,   dgamma = sum dy * z_norm,
    dx = inv_std / m * (m * dz - sum dz - z_norm * sum(dz * z_norm)).
  The two sums are the gradient flowing back through mu and through sigma2: every x_i moves the
  batch's statistics, so no dx_i depends on dy_i alone.
  """
  axes = batch_axes(dy)
  m = dy.size // dy.shape[-1]
  dbeta = jnp.sum(dy, axes)
  dgamma = jnp.sum(dy * cache.z_norm, axes)
  dz = dy * cache.gamma
  dx = cache.inv_std / m * (m * dz - jnp.sum(dz, axes) - cache.z_norm * jnp.sum(
      dz * cache.z_norm, axes))
  return dx, dgamma, dbeta


def batch_norm_inference(x: jax.Array, gamma: jax.Array, beta: jax.Array, mean: jax.Array,
                         var: jax.Array, eps: float | jax.Array = 1e-5) -> jax.Array:
  """Test-time batch norm: fixed statistics (running averages) instead of the batch's own."""
  return gamma * (x - mean) * jax.lax.rsqrt(var + eps) + beta


def update_running(running: jax.Array, batch: jax.Array, momentum: float | jax.Array) -> jax.Array:
  """The exponentially weighted average used at test time: v <- momentum * v + (1 - momentum) * b.

  Applied to mu and to sigma2 after every training step (Flax's convention: `momentum` is the
  weight of the past, 0.9 averages over roughly the last 1 / (1 - 0.9) = 10 batches).
  """
  return momentum * running + (1 - momentum) * batch


def pooled_moments(means: jax.Array, variances: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Population mean and variance from K equal-sized batches' means and biased variances [K, n].

  E[x] is the mean of the batch means; Var[x] = E[x^2] - E[x]^2 with E[x^2] the mean of
  (variance + mean^2) over batches. This is the "precise BN" estimate over a whole set.
  """
  mean = jnp.mean(means, 0)
  return mean, jnp.mean(variances + jnp.square(means), 0) - jnp.square(mean)


def _normalize(x, axes, gamma, beta, eps):
  mu, var = moments(x, axes)
  return gamma * ((x - mu) * jax.lax.rsqrt(var + eps)) + beta


def layer_norm(x: jax.Array, gamma: jax.Array, beta: jax.Array,
               eps: float | jax.Array = 1e-5) -> jax.Array:
  """Per example, over all its features (and pixels): no dependence on the rest of the batch."""
  return _normalize(x, tuple(range(1, x.ndim)), gamma, beta, eps)


def group_norm(x: jax.Array, gamma: jax.Array, beta: jax.Array, groups: int,
               eps: float | jax.Array = 1e-5) -> jax.Array:
  """Per example, over each of `groups` equal groups of channels together with their pixels.

  One group is layer norm; as many groups as channels is instance norm. gamma and beta are
  per channel, applied after the groups are merged back.
  """
  channels = x.shape[-1]
  grouped = x.reshape(x.shape[:-1] + (groups, channels // groups))
  axes = tuple(range(1, x.ndim - 1)) + (x.ndim,)  # Pixels and the channels within a group.
  mu, var = moments(grouped, axes)
  z_norm = ((grouped - mu) * jax.lax.rsqrt(var + eps)).reshape(x.shape)
  return gamma * z_norm + beta


def instance_norm(x: jax.Array, gamma: jax.Array, beta: jax.Array,
                  eps: float | jax.Array = 1e-5) -> jax.Array:
  """Per example and channel, over the pixels. Needs pixels: on (m, n) each group is one value."""
  return _normalize(x, tuple(range(1, x.ndim - 1)), gamma, beta, eps)
