"""The pure member layer: one model's init, training epoch and evaluation. Knows nothing of sweeps.

A member is one setting being trained. What all members of one bucket share (their static config,
the model, the optimizer) is a `MemberSpec`, built once per bucket; what each member owns is its
`MemberState`, whose numeric hyperparameters are traced values. bnlab.programs vmaps these
functions over a leading member axis [N] and compiles them; nothing here knows it is vmapped.
"""

import functools
from typing import Any, Callable, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from bnlab import models
from bnlab import norms
from bnlab import optim

PyTree = Any
Hparams = dict[str, dict[str, Any]]  # {'optimizer': {name: value}, 'model': {name: value}}
MODEL_HPARAMS = ('bn_momentum', 'bn_epsilon', 'init_scale')
# Fields that change no shape or control flow: traced values, one per member.
DYNAMIC_FIELDS = tuple([f'optimizer.{k}' for k in optim.HPARAMS]
                       + [f'model.{k}' for k in MODEL_HPARAMS])
EVAL_CHUNK = 1024  # Examples per evaluation step: bounds the activation memory of N members.


@flax.struct.dataclass
class MemberState:
  """One member's training state; vmapped, every leaf gains a leading [N] axis."""
  params: PyTree  # The model's parameters.
  batch_stats: PyTree  # BN running averages ({} for norms that keep none).
  opt_state: optax.OptState  # Holds the optimizer's hyperparameters (inject_hyperparams): [].
  model_hparams: dict[str, jax.Array]  # MODEL_HPARAMS, each a scalar [].
  diverged: jax.Array  # bool []: True once a step gave a non-finite loss or update.
  diverged_epoch: jax.Array  # int32 []: the 0-based epoch it diverged in, -1 if never.


class MemberSpec(NamedTuple):
  """What the members of one bucket share, built once (`make_spec`)."""
  static: ml_collections.FrozenConfigDict  # The bucket's static config (static_config).
  num_classes: int
  num_train: int  # Training examples: fixes the steps per epoch and the schedule's length.
  make_model: Callable[[dict[str, Any]], nn.Module]  # A member's model hparams -> its module.
  optimizer: optax.GradientTransformation  # Its update reads each member's own hyperparameters.


def static_config(config: ml_collections.ConfigDict) -> ml_collections.FrozenConfigDict:
  """The hashable part of a trial config that decides shapes and control flow (its bucket)."""
  tree = config.to_dict()
  for name in ('seed', 'sweep'):
    tree.pop(name, None)
  for field in DYNAMIC_FIELDS:
    section, key = field.split('.')
    tree[section].pop(key)
  tree['train'].pop('checkpoint_every', None)  # Host-side cadence: not part of the program.
  return ml_collections.FrozenConfigDict(tree)


def buckets(configs: list[ml_collections.ConfigDict]) -> list[list[int]]:
  """Groups trial indices by static config (first-seen order): each group compiles once."""
  groups = {}
  for i, config in enumerate(configs):
    groups.setdefault(static_config(config), []).append(i)
  return list(groups.values())


def total_steps(static: ml_collections.FrozenConfigDict, num_train: int) -> int:
  return static.train.epochs * (num_train // static.train.batch_size)


@functools.lru_cache(maxsize=64)
def make_spec(static: ml_collections.FrozenConfigDict, num_classes: int,
              num_train: int) -> MemberSpec:
  """The bucket's spec; equal arguments give the same object, so compiled programs are shared."""
  # inject_hyperparams reads the numbers from the optimizer state in update(): one transformation
  # serves every member, built with placeholders; only init() needs each member's own values
  # (init_member), which then live in its state.
  optimizer = optim.make_optimizer(static.optimizer, total_steps(static, num_train),
                                   dict.fromkeys(optim.HPARAMS, 0.0))
  make_model = functools.partial(models.make_model, static.model, num_classes)
  return MemberSpec(static, num_classes, num_train, make_model, optimizer)


def dynamic_hparams(configs: list[ml_collections.ConfigDict]) -> Hparams:
  """The dynamic hyperparameters of N trial configs as {'optimizer': {k: [N]}, 'model': {...}}."""
  def stack(section, keys):
    return {k: np.array([float(c[section][k]) for c in configs], np.float32) for k in keys}
  return {'optimizer': stack('optimizer', optim.HPARAMS), 'model': stack('model', MODEL_HPARAMS)}


def _keys(seed):
  base = jax.random.key(seed)
  return jax.random.fold_in(base, 0), jax.random.fold_in(base, 1)  # init, data order


def init_member(spec: MemberSpec, hparams: Hparams, seed: jax.Array,
                x_train: jax.Array) -> MemberState:
  """One member's initial state; `seed` picks the init (members share it by default)."""
  init_key, _ = _keys(seed)
  model = spec.make_model(hparams['model'])
  variables = model.init(init_key, x_train[:1], train=False)
  tx = optim.make_optimizer(spec.static.optimizer, total_steps(spec.static, spec.num_train),
                            hparams['optimizer'])
  return MemberState(
      params=variables['params'], batch_stats=variables.get('batch_stats', {}),
      opt_state=tx.init(variables['params']), model_hparams=hparams['model'],
      diverged=jnp.array(False), diverged_epoch=jnp.array(-1, jnp.int32))


def _masked_where(ok, new, old):
  return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


def train_step(spec: MemberSpec, state: MemberState, x: jax.Array,
               y: jax.Array) -> tuple[MemberState, jax.Array]:
  """One optimizer step on one batch. A non-finite step changes nothing and freezes the member."""
  model = spec.make_model(state.model_hparams)

  def loss_fn(params):
    logits, updates = model.apply({'params': params, 'batch_stats': state.batch_stats}, x,
                                  train=True, mutable=['batch_stats'])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, updates.get('batch_stats', {})

  (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = spec.optimizer.update(grads, state.opt_state, state.params)
  ok = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(updates)) & ~state.diverged
  updates = jax.tree.map(lambda u: jnp.where(ok, u, 0), updates)
  state = state.replace(
      params=optax.apply_updates(state.params, updates),
      batch_stats=_masked_where(ok, batch_stats, state.batch_stats),
      opt_state=opt_state, diverged=~ok)
  return state, loss


def epoch_order(seed: jax.Array, epoch: jax.Array, num_train: int,
                batch_size: int) -> jax.Array:
  """The epoch's batches as indices [steps, batch_size]: a permutation keyed by fold_in(epoch)."""
  _, data_key = _keys(seed)
  steps = num_train // batch_size
  order = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_train)
  return order[:steps * batch_size].reshape(steps, batch_size)


def train_epoch(spec: MemberSpec, state: MemberState, x: jax.Array, y: jax.Array,
                seed: jax.Array, epoch: jax.Array) -> tuple[MemberState, jax.Array]:
  """One epoch of training as a `lax.scan` over its batches; returns the mean train loss."""
  step = functools.partial(train_step, spec)
  order = epoch_order(seed, epoch, x.shape[0], spec.static.train.batch_size)
  state, losses = jax.lax.scan(lambda s, idx: step(s, x[idx], y[idx]), state, order)
  newly = state.diverged & (state.diverged_epoch < 0)
  state = state.replace(diverged_epoch=jnp.where(newly, epoch, state.diverged_epoch))
  return state, losses.mean()


def evaluate(spec: MemberSpec, state: MemberState, x: jax.Array, y: jax.Array,
             batch_statistics: bool = False) -> dict[str, jax.Array]:
  """Mean loss and accuracy over (x, y) in chunks, BN with its running averages.

  With `batch_statistics`, BN normalizes each chunk of train.batch_size examples by the chunk's
  own statistics instead (training mode, the new running averages dropped). The last chunk is
  filled up by wrapping around to the first examples, so its statistics come from a full batch
  of real examples; the repeats are masked out of the metrics.
  """
  model = spec.make_model(state.model_hparams)
  n = x.shape[0]
  chunk = min(n, spec.static.train.batch_size if batch_statistics else EVAL_CHUNK)
  pad = -n % chunk
  xs = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1), mode='wrap').reshape(
      (-1, chunk) + x.shape[1:])
  ys = jnp.pad(y, (0, pad)).reshape(-1, chunk)
  mask = (jnp.arange(n + pad) < n).reshape(-1, chunk)
  variables = {'params': state.params, 'batch_stats': state.batch_stats}

  def body(totals, batch):
    xb, yb, mb = batch
    if batch_statistics:
      logits, _ = model.apply(variables, xb, train=True, mutable=['batch_stats'])
    else:
      logits = model.apply(variables, xb, train=False)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb)
    correct = jnp.argmax(logits, -1) == yb
    return (totals[0] + jnp.sum(loss * mb), totals[1] + jnp.sum(correct * mb)), None

  (loss, correct), _ = jax.lax.scan(body, (0.0, 0.0), (xs, ys, mask))
  return {'loss': loss / n, 'accuracy': correct / n}


def _pool_stats(stats):
  """Pools stacked per-batch BN statistics {..., 'mean': [K, n], 'var': [K, n]} layer by layer."""
  if set(stats) == {'mean', 'var'}:
    mean, var = norms.pooled_moments(stats['mean'], stats['var'])
    return {'mean': mean, 'var': var}
  return {k: _pool_stats(v) for k, v in stats.items()}


def precise_batch_stats(spec: MemberSpec, state: MemberState, x: jax.Array) -> PyTree:
  """Precise BN: every BN layer's statistics recomputed over the training set x.

  The trained model runs in training mode over x in batches of train.batch_size (in order,
  the remainder dropped); with momentum 0 each batch's update is that batch's own mean and
  variance, and these are pooled into the population mean and variance of each layer's input.
  """
  model = spec.make_model(dict(state.model_hparams, bn_momentum=0.0))
  size = min(spec.static.train.batch_size, x.shape[0])
  batches = x[:x.shape[0] // size * size].reshape((-1, size) + x.shape[1:])

  def batch_stats(xb):
    _, updates = model.apply({'params': state.params, 'batch_stats': state.batch_stats}, xb,
                             train=True, mutable=['batch_stats'])
    return updates['batch_stats']

  return _pool_stats(jax.lax.map(batch_stats, batches))


def evaluate_bn(spec: MemberSpec, state: MemberState, x_train: jax.Array, x: jax.Array,
                y: jax.Array) -> dict[str, jax.Array]:
  """`evaluate` with the BN statistics `model.bn_eval` names: running, batch or precise.

  Norms without running averages give the same numbers in every mode.
  """
  mode = spec.static.model.bn_eval
  if mode == 'precise' and state.batch_stats:
    state = state.replace(batch_stats=precise_batch_stats(spec, state, x_train))
  return evaluate(spec, state, x, y, batch_statistics=mode == 'batch')


def epoch_and_eval(spec: MemberSpec, state: MemberState, x: jax.Array, y: jax.Array,
                   x_val: jax.Array, y_val: jax.Array, seed: jax.Array,
                   epoch: jax.Array) -> tuple[MemberState, dict[str, jax.Array]]:
  """One epoch of training, then the validation metrics the sweep selects by."""
  state, train_loss = train_epoch(spec, state, x, y, seed, epoch)
  val = evaluate_bn(spec, state, x, x_val, y_val)
  metrics = {'train_loss': train_loss, 'val_loss': val['loss'], 'val_accuracy': val['accuracy'],
             'diverged': state.diverged}
  if spec.static.model.bn_eval != 'running':  # The gap to the usual running averages, for study.
    running = evaluate(spec, state, x_val, y_val)
    metrics.update(val_loss_running=running['loss'], val_accuracy_running=running['accuracy'])
  return state, metrics
