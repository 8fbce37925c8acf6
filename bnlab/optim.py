"""make_optimizer: one optax chain per config, numeric hyperparameters injected per member.

The chain is clip-by-global-norm -> (L2 term) -> the optimizer -> the schedule's multiplier. Every
numeric hyperparameter goes through `optax.inject_hyperparams`, so it lives in the optimizer
state as a scalar: vmapped, it is an [N] array, one value per member, and PBT can edit it.
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ('sgd', 'momentum', 'rmsprop', 'adam', 'adamw')
SCHEDULES = ('constant', 'cosine', 'warmup_cosine')
HPARAMS = ('learning_rate', 'b1', 'b2', 'eps', 'momentum', 'decay', 'weight_decay', 'clip_norm')


def _kernels(params):
  """Weight decay goes to weight matrices only, not to biases or norm scales."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def schedule_multiplier(name: str, total_steps: int) -> optax.Schedule:
  """The learning-rate multiplier over steps (1.0 at the peak)."""
  if name == 'cosine':
    return optax.cosine_decay_schedule(1.0, max(total_steps, 1))
  if name == 'warmup_cosine':
    warmup = max(total_steps // 20, 1)
    return optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, max(total_steps, warmup + 1))
  return optax.constant_schedule(1.0)


def _chain(learning_rate, b1, b2, eps, momentum, decay, weight_decay, clip_norm, *, name,
           schedule):
  max_norm = jnp.where(clip_norm > 0, clip_norm, jnp.inf)  # 0 means no clipping.
  base = {
      'sgd': lambda: optax.sgd(learning_rate),
      'momentum': lambda: optax.sgd(learning_rate, momentum=momentum),
      'rmsprop': lambda: optax.rmsprop(learning_rate, decay=decay, eps=eps),
      'adam': lambda: optax.adam(learning_rate, b1=b1, b2=b2, eps=eps),
      'adamw': lambda: optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps,
                                   weight_decay=weight_decay, mask=_kernels),
  }[name]()
  l2 = (optax.identity() if name == 'adamw'
        else optax.add_decayed_weights(weight_decay, mask=_kernels))
  return optax.chain(optax.clip_by_global_norm(max_norm), l2, base,
                     optax.scale_by_schedule(schedule))


def make_optimizer(optimizer_config: ml_collections.ConfigDict, total_steps: int,
                   hparams: dict[str, Any] | None = None) -> optax.GradientTransformation:
  """The optax transformation of a config, with its numbers or `hparams` (maybe traced) instead."""
  values = {k: optimizer_config[k] for k in HPARAMS} if hparams is None else dict(hparams)
  return optax.inject_hyperparams(_chain, static_args=('name', 'schedule'))(
      name=optimizer_config.name,
      schedule=schedule_multiplier(optimizer_config.schedule, total_steps), **values)
