"""The vmapped trainer: pure functions over ONE member, vmapped over a member axis, jitted once.

A member is one setting being trained. `init_member`, `train_epoch` and `evaluate` know nothing of
sweeps; `compile_programs` vmaps them over a leading [N] axis (the batch shared, `in_axes=None`)
and compiles them once per bucket of equal static settings and member count. A `Population` is N
stacked members plus the compiled programs that advance them one epoch at a time: the whole
epoch (`lax.scan` over its batches) runs inside the program, and metrics leave the device once.
"""

import concurrent.futures
import dataclasses
import functools
import os
import time
from typing import Any

from absl import logging
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from bnlab import models
from bnlab import norms
from bnlab import optim
from bnlab import parallel

MODEL_HPARAMS = ('bn_momentum', 'bn_epsilon', 'init_scale')
# Fields that change no shape or control flow: traced [N] arrays, one value per member.
DYNAMIC_FIELDS = tuple([f'optimizer.{k}' for k in optim.HPARAMS]
                       + [f'model.{k}' for k in MODEL_HPARAMS])
EVAL_CHUNK = 1024  # Examples per evaluation step; bounds activation memory for N members.
# XLA drops a member axis of size 1 and then picks other kernels; Adam turns that float noise into
# lr-sized steps (digits, one epoch: val loss 6e-5 relative apart). With at least two members a
# trial re-run alone keeps its sweep arithmetic to within rounding (1e-7 relative).
MIN_MEMBERS = 2
# The init program runs once per chunk and is all elementwise random-number code: LLVM's
# optimizer spent 14 of its 16 s compiling it (64 members, 2-core CPU) for no runtime gain.
INIT_COMPILER_OPTIONS = {'xla_backend_optimization_level': 0}
# On a CPU the epoch program trains its members about BLOCK_BYTES of state and gradients at a
# time (a lax.map over member blocks, each a vmap): a block's parameters, optimizer state and
# activations stay in the caches through its steps instead of streaming from memory at every
# step. Digits 3x128 MLP + Adam (1 MiB a member), 2-core EPYC: 256 members 1.5x and 1,024
# members 2.2x faster per epoch than one vmap over all; 4 MiB blocks beat 16 and 64 MiB ones.
# $BNLAB_BLOCK_BYTES sets it for a CPU of other caches.
BLOCK_BYTES = int(os.environ.get('BNLAB_BLOCK_BYTES', 4 * 2**20))
CACHE_ENV = 'BNLAB_COMPILATION_CACHE'  # A folder; '' or 'off' turns the cache off.
DEFAULT_CACHE_DIR = os.path.join('~', '.cache', 'bnlab', 'jax')


def enable_compilation_cache(path=None):
  """Turns on JAX's persistent compilation cache so a re-run of a sweep skips compiling.

  The folder is `path`, else $BNLAB_COMPILATION_CACHE, else ~/.cache/bnlab/jax; an empty value
  or 'off' leaves the cache off. Returns the folder used, or None.
  """
  path = os.environ.get(CACHE_ENV, DEFAULT_CACHE_DIR) if path is None else path
  if path in ('', 'off'):
    return None
  path = os.path.expanduser(path)
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
  return path


@flax.struct.dataclass
class MemberState:
  params: Any
  batch_stats: Any
  opt_state: Any  # Holds the optimizer's hyperparameters (optax.inject_hyperparams).
  model_hparams: Any  # {'bn_momentum', 'bn_epsilon', 'init_scale'} as scalars.
  diverged: jax.Array  # True once a step gave a non-finite loss or update: frozen from then on.
  diverged_epoch: jax.Array  # The epoch it diverged in, -1 if never.


def static_config(config):
  """The hashable part of a trial config that decides shapes and control flow (its bucket)."""
  tree = config.to_dict()
  for name in ('seed', 'sweep'):
    tree.pop(name, None)
  for field in DYNAMIC_FIELDS:
    section, key = field.split('.')
    tree[section].pop(key)
  tree['train'].pop('checkpoint_every', None)  # Host-side cadence: not part of the program.
  return ml_collections.FrozenConfigDict(tree)


def dynamic_hparams(configs):
  """The dynamic hyperparameters of N trial configs as {'optimizer': {k: [N]}, 'model': {...}}."""
  def stack(section, keys):
    return {k: np.array([float(c[section][k]) for c in configs], np.float32) for k in keys}
  return {'optimizer': stack('optimizer', optim.HPARAMS), 'model': stack('model', MODEL_HPARAMS)}


def total_steps(static, num_train):
  return static.train.epochs * (num_train // static.train.batch_size)


def _keys(seed):
  base = jax.random.key(seed)
  return jax.random.fold_in(base, 0), jax.random.fold_in(base, 1)  # init, data order


def init_member(static, num_classes, num_train, hparams, seed, x_train):
  """One member's initial state; `seed` picks the init (members share it by default)."""
  init_key, _ = _keys(seed)
  model = models.make_model(static.model, num_classes, hparams['model'])
  variables = model.init(init_key, x_train[:1], train=False)
  tx = optim.make_optimizer(static.optimizer, total_steps(static, num_train), hparams['optimizer'])
  return MemberState(
      params=variables['params'], batch_stats=variables.get('batch_stats', {}),
      opt_state=tx.init(variables['params']), model_hparams=hparams['model'],
      diverged=jnp.array(False), diverged_epoch=jnp.array(-1, jnp.int32))


def _masked_where(ok, new, old):
  return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


def train_step(static, num_classes, num_train, state, x, y):
  """One optimizer step on one batch. A non-finite step changes nothing and freezes the member."""
  model = models.make_model(static.model, num_classes, state.model_hparams)

  def loss_fn(params):
    logits, updates = model.apply({'params': params, 'batch_stats': state.batch_stats}, x,
                                  train=True, mutable=['batch_stats'])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, updates.get('batch_stats', {})

  (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  tx = optim.make_optimizer(static.optimizer, total_steps(static, num_train),
                            state.opt_state.hyperparams)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  ok = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(updates)) & ~state.diverged
  updates = jax.tree.map(lambda u: jnp.where(ok, u, 0), updates)
  state = state.replace(
      params=optax.apply_updates(state.params, updates),
      batch_stats=_masked_where(ok, batch_stats, state.batch_stats),
      opt_state=opt_state, diverged=~ok)
  return state, loss


def epoch_order(seed, epoch, num_train, batch_size):
  """The epoch's batches as indices [steps, batch_size]: a permutation keyed by fold_in(epoch)."""
  _, data_key = _keys(seed)
  steps = num_train // batch_size
  order = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_train)
  return order[:steps * batch_size].reshape(steps, batch_size)


def train_epoch(static, num_classes, state, x, y, seed, epoch):
  """One epoch of training as a `lax.scan` over its batches; returns the mean train loss."""
  step = functools.partial(train_step, static, num_classes, x.shape[0])
  order = epoch_order(seed, epoch, x.shape[0], static.train.batch_size)
  state, losses = jax.lax.scan(lambda s, idx: step(s, x[idx], y[idx]), state, order)
  newly = state.diverged & (state.diverged_epoch < 0)
  state = state.replace(diverged_epoch=jnp.where(newly, epoch, state.diverged_epoch))
  return state, losses.mean()


def evaluate(static, num_classes, state, x, y, batch_statistics=False):
  """Mean loss and accuracy over (x, y) in chunks, BN with its running averages.

  With `batch_statistics`, BN normalizes each chunk of train.batch_size examples by the chunk's
  own statistics instead (training mode, the new running averages dropped). The last chunk is
  filled up by wrapping around to the first examples, so its statistics come from a full batch
  of real examples; the repeats are masked out of the metrics.
  """
  model = models.make_model(static.model, num_classes, state.model_hparams)
  n = x.shape[0]
  chunk = min(n, static.train.batch_size if batch_statistics else EVAL_CHUNK)
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


def precise_batch_stats(static, num_classes, state, x):
  """Precise BN: every BN layer's statistics recomputed over the training set x.

  The trained model runs in training mode over x in batches of train.batch_size (in order,
  the remainder dropped); with momentum 0 each batch's update is that batch's own mean and
  variance, and these are pooled into the population mean and variance of each layer's input.
  """
  hparams = dict(state.model_hparams, bn_momentum=0.0)
  model = models.make_model(static.model, num_classes, hparams)
  size = min(static.train.batch_size, x.shape[0])
  batches = x[:x.shape[0] // size * size].reshape((-1, size) + x.shape[1:])

  def batch_stats(xb):
    _, updates = model.apply({'params': state.params, 'batch_stats': state.batch_stats}, xb,
                             train=True, mutable=['batch_stats'])
    return updates['batch_stats']

  return _pool_stats(jax.lax.map(batch_stats, batches))


def evaluate_bn(static, num_classes, state, x_train, x, y):
  """`evaluate` with the BN statistics `model.bn_eval` names: running, batch or precise.

  Norms without running averages give the same numbers in every mode.
  """
  mode = static.model.bn_eval
  if mode == 'precise' and state.batch_stats:
    state = state.replace(batch_stats=precise_batch_stats(static, num_classes, state, x_train))
  return evaluate(static, num_classes, state, x, y, batch_statistics=mode == 'batch')


def epoch_and_eval(static, num_classes, state, x, y, x_val, y_val, seed, epoch):
  state, train_loss = train_epoch(static, num_classes, state, x, y, seed, epoch)
  val = evaluate_bn(static, num_classes, state, x, x_val, y_val)
  metrics = {'train_loss': train_loss, 'val_loss': val['loss'], 'val_accuracy': val['accuracy'],
             'diverged': state.diverged}
  if static.model.bn_eval != 'running':  # The gap to the usual running averages, for study.
    running = evaluate(static, num_classes, state, x_val, y_val)
    metrics.update(val_loss_running=running['loss'], val_accuracy_running=running['accuracy'])
  return state, metrics


@dataclasses.dataclass(frozen=True)
class Programs:
  init: Any
  epoch: Any
  test: Any
  compile_seconds: float
  block: int  # Members per block of the epoch program on each device (member_block).


def member_block(num_members, member_bytes, platform):
  """Members per block of a device's `num_members`: as many as hold BLOCK_BYTES, at least
  MIN_MEMBERS (all of them off a CPU, where caches are not the bottleneck)."""
  if platform != 'cpu':
    return num_members
  return min(num_members, max(MIN_MEMBERS, BLOCK_BYTES // max(member_bytes, 1)))


def in_blocks(fn, block, member_args):
  """`fn` over a leading member axis, computed `block` members at a time by a lax.map over the
  blocks. `member_args` are the positions of the arguments that carry the member axis. A last
  block that is not full is filled with copies of the first members, dropped afterwards: every
  block has the same shape, so a member computes alike in any sweep (and alone, in a program
  of as many members as a block) instead of in blocks of whatever divides the member count.
  """
  def blocked(*args):
    count = jax.tree.leaves(args[member_args[0]])[0].shape[0]
    if block >= count:
      return fn(*args)
    blocks = -(-count // block)
    fill = blocks * block - count  # < block < count: copies of distinct members.

    def split(a):
      a = jnp.concatenate([a, a[:fill]]) if fill else a
      return a.reshape((blocks, block) + a.shape[1:])

    def one_block(parts):
      full = list(args)
      for i, part in zip(member_args, parts):
        full[i] = part
      return fn(*full)

    out = jax.lax.map(one_block, [jax.tree.map(split, args[i]) for i in member_args])
    return jax.tree.map(lambda a: a.reshape((blocks * block,) + a.shape[2:])[:count], out)
  return blocked


def tree_bytes(tree):
  """Bytes of every array (or ShapeDtypeStruct) in `tree`."""
  return sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in jax.tree.leaves(tree))


def _epoch_program(static, num_classes, state, num_members, own_seeds, mesh):
  """epoch_and_eval vmapped over the members, each device's own members block by block
  (shard_map: no collective, no member leaves its device); returns (function, block)."""
  epoch = jax.vmap(functools.partial(epoch_and_eval, static, num_classes),
                   in_axes=(0, None, None, None, None, 0 if own_seeds else None, None))
  block = member_block(num_members // mesh.size, 2 * tree_bytes(state) // num_members,
                       mesh.devices.flat[0].platform)  # The state and its gradients.
  split, whole = jax.sharding.PartitionSpec(parallel.MEMBER_AXIS), jax.sharding.PartitionSpec()
  epoch = jax.shard_map(in_blocks(epoch, block, (0, 5) if own_seeds else (0,)), mesh=mesh,
                        in_specs=(split,) + (whole,) * 4 + (split if own_seeds else whole, whole),
                        out_specs=split, check_vma=False)  # No collective to check.
  return epoch, block


@functools.lru_cache(maxsize=64)
def compile_programs(static, num_classes, num_members, data_shapes, own_seeds=False,
                     mesh=None):
  """The vmapped, jitted init/epoch/test programs for N members of one bucket, compiled AOT.

  With `own_seeds` every member gets its own data order (the seed is an [N] input, so each
  member gathers its own batches); by default one order is shared and each batch gathered once.
  The member axis (seeds included) is split over `mesh` (default: every device), the data
  replicated.
  """
  start = time.perf_counter()
  mesh = mesh or parallel.member_mesh()
  members, replicated = parallel.member_sharding(mesh), parallel.replicated(mesh)
  (x_shape, x_dtype), _, (val_shape, _), _, (test_shape, _), _ = data_shapes
  shaped = lambda shape, dtype=jnp.float32: jax.ShapeDtypeStruct(shape, dtype)
  hparams = {section: {k: shaped((num_members,)) for k in keys}
             for section, keys in (('optimizer', optim.HPARAMS), ('model', MODEL_HPARAMS))}
  member_seeds = shaped((num_members,), jnp.int32)
  x, y = shaped(x_shape, x_dtype), shaped(x_shape[:1], jnp.int32)
  x_val, y_val = shaped(val_shape, x_dtype), shaped(val_shape[:1], jnp.int32)
  x_test, y_test = shaped(test_shape, x_dtype), shaped(test_shape[:1], jnp.int32)
  scalar = shaped((), jnp.int32)

  # A shared seed enters unbatched: its draw is made once, and each member scales it by its own
  # init_scale (the per-member draw's numbers, up to the last bit, at a cost that does not grow
  # with N: the init ran 1.7 s at 1,024 members drawing per member, BENCHMARKS.md change 13).
  seeds, seed_sharding = (member_seeds, members) if own_seeds else (scalar, replicated)
  init = jax.jit(jax.vmap(functools.partial(init_member, static, num_classes, x_shape[0]),
                          in_axes=(0, 0 if own_seeds else None, None)),
                 in_shardings=(members, seed_sharding, replicated), out_shardings=members)
  state = jax.eval_shape(init, hparams, seeds, x)
  init = init.lower(hparams, seeds, x)
  epoch, block = _epoch_program(static, num_classes, state, num_members, own_seeds, mesh)
  epoch = jax.jit(epoch, donate_argnums=0,
                  in_shardings=(members,) + (replicated,) * 4 + (seed_sharding, replicated),
                  out_shardings=members)
  epoch = epoch.lower(state, x, y, x_val, y_val, seeds, scalar)
  test = jax.jit(jax.vmap(functools.partial(evaluate_bn, static, num_classes),
                          in_axes=(0, None, None, None)),
                 in_shardings=(members,) + (replicated,) * 3, out_shardings=members)
  test = test.lower(state, x, x_test, y_test)
  # XLA compiles without Python's lock: the epoch program (most of the time) beside the others.
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    init, epoch, test = pool.map(lambda program, options: program.compile(options),
                                 (init, epoch, test), (INIT_COMPILER_OPTIONS, None, None))
  return Programs(init, epoch, test, time.perf_counter() - start, block)


def data_shapes(data):
  names = ('x_train', 'y_train', 'x_val', 'y_val', 'x_test', 'y_test')
  return tuple((data[k].shape, data[k].dtype) for k in names)


@dataclasses.dataclass
class Population:
  """N members of one bucket trained side by side. Member i is trial `trials[i]`."""
  static: Any
  num_classes: int
  trials: np.ndarray
  seed: int
  state: MemberState
  programs: Programs
  epoch: int = 0
  member_seeds: Any = None  # [N] init/data seeds, or None: every member uses `seed`.

  @classmethod
  def create(cls, configs, trials, data, num_classes, seed, member_seeds=None):
    """Initializes one member per config (all of one bucket), each from the shared init key.

    `member_seeds` ([N] ints) gives each member its own init and data order instead.
    """
    static = static_config(configs[0])
    own = member_seeds is not None
    mesh = parallel.member_mesh()
    programs = compile_programs(static, num_classes, len(configs), data_shapes(data), own, mesh)
    member_seeds = np.asarray(member_seeds, np.int32) if own else None
    hparams = parallel.put(dynamic_hparams(configs), parallel.member_sharding(mesh))
    # The whole placed x_train, sliced inside the program: slicing it here would compile four
    # small eager programs.
    x_train = parallel.put(data['x_train'], parallel.replicated(mesh))
    state = programs.init(hparams, _placed_seeds(seed, member_seeds, mesh), x_train)
    return cls(static, num_classes, np.asarray(trials), seed, state, programs,
               member_seeds=member_seeds)

  def run_epoch(self, data):
    """Trains every member one epoch; returns the epoch's metrics as host [N] arrays."""
    mesh = parallel.member_mesh()
    data = parallel.put(data, parallel.replicated(mesh))
    seed = _placed_seeds(self.seed, self.member_seeds, mesh)
    epoch = parallel.put(np.int32(self.epoch), parallel.replicated(mesh))
    self.state, metrics = self.programs.epoch(
        self.state, data['x_train'], data['y_train'], data['x_val'], data['y_val'], seed, epoch)
    self.epoch += 1
    return parallel.to_host(metrics)

  def evaluate_test(self, data):
    """Test loss and accuracy of every member ([N] host arrays), for reporting only."""
    data = parallel.put(data, parallel.replicated(parallel.member_mesh()))
    return parallel.to_host(self.programs.test(self.state, data['x_train'], data['x_test'],
                                               data['y_test']))

  @property
  def diverged_epoch(self):
    return np.asarray(parallel.to_host(self.state.diverged_epoch))

  def save(self, checkpointer, name, history, seconds=0.0, extra=None):
    """Checkpoints the stacked state, the epoch and `history` as `name` (bnlab.checkpoint)."""
    checkpointer.save_population(name, self.state, self.epoch, history, seconds, extra)

  def restore(self, checkpointer, name):
    """Continues from the last checkpoint of `name`, if any: (history, seconds, extra)."""
    restored = checkpointer.restore_population(name, self.state)
    if restored is None:
      return [], 0.0, None
    self.state, self.epoch, history, seconds, extra = restored
    return history, seconds, extra

  def take(self, indices, data):
    """A population of members `indices` (repeats allowed), their state gathered on the member
    axis: each continues exactly as it would have. Compiles (cached) for the new member count,
    which must be padded_size(...) of itself (strategies.populations.padded pads the indices)."""
    indices = np.asarray(indices)
    if len(indices) != padded_size(len(indices)):
      raise ValueError(f'take: {len(indices)} members, not a multiple of the '
                       f'{jax.device_count()} devices with {MIN_MEMBERS} on each: pad the indices')
    member_seeds = None if self.member_seeds is None else self.member_seeds[indices]
    mesh = parallel.member_mesh()
    programs = compile_programs(self.static, self.num_classes, len(indices), data_shapes(data),
                                member_seeds is not None, mesh)
    state = _gather(mesh)(self.state, parallel.put(indices, parallel.replicated(mesh)))
    return dataclasses.replace(self, trials=self.trials[indices], state=state, programs=programs,
                               member_seeds=member_seeds)

  def hparams(self):
    """The members' dynamic hyperparameters as {'optimizer': {k: [N]}, 'model': {k: [N]}}."""
    return parallel.to_host({'optimizer': dict(self.state.opt_state.hyperparams),
                             'model': dict(self.state.model_hparams)})

  def set_hparams(self, hparams):
    """Replaces the members' dynamic hyperparameters (same tree as `hparams()`), e.g. for PBT."""
    members = parallel.member_sharding(parallel.member_mesh())
    as_array = lambda tree: parallel.put({k: np.asarray(v, np.float32) for k, v in tree.items()},
                                         members)
    opt_state = self.state.opt_state._replace(hyperparams=as_array(hparams['optimizer']))
    self.state = self.state.replace(opt_state=opt_state,
                                    model_hparams=as_array(hparams['model']))


def _placed_seeds(seed, member_seeds, mesh):
  """The init and epoch programs' seed input: the shared `seed`, replicated, or the host [N]
  `member_seeds` (cheap to gather in take()), split over the devices like the state."""
  if member_seeds is None:
    return parallel.put(np.int32(seed), parallel.replicated(mesh))
  return parallel.put(member_seeds, parallel.member_sharding(mesh))


@functools.cache
def _gather(mesh):
  """state[indices] on every leaf, the result split over `mesh` again. A jitted gather rather
  than numpy indexing, so that it also works on arrays spread over several processes."""
  return jax.jit(lambda state, indices: jax.tree.map(lambda a: a[indices], state),
                 out_shardings=parallel.member_sharding(mesh))


def config_seeds(configs, seed):
  """The configs' own seeds when any differs from `seed` (replicates of `sweep.seeds`), else
  None: the members then share one init and one data order."""
  seeds = [int(c.seed) for c in configs]
  return seeds if set(seeds) != {seed} else None


def member_limit(max_parallel):
  """`max_parallel` rounded down to a multiple of the device count, MIN_MEMBERS per device at
  least (on one device: max(max_parallel, MIN_MEMBERS))."""
  return parallel.member_limit(max_parallel, jax.device_count(), MIN_MEMBERS)


def padded_size(count):
  """Members of a program for `count` trials: at least MIN_MEMBERS on every device, as many on
  each (on one device: max(count, MIN_MEMBERS))."""
  return parallel.padded_members(count, jax.device_count(), MIN_MEMBERS * jax.device_count())


def buckets(configs):
  """Groups trial indices by static config (first-seen order): each group compiles once."""
  groups = {}
  for i, config in enumerate(configs):
    groups.setdefault(static_config(config), []).append(i)
  return list(groups.values())


def chunks(indices, max_parallel):
  """Splits a bucket into chunks of at most max_parallel members, sizes as even as possible."""
  count = -(-len(indices) // max_parallel)
  size = -(-len(indices) // count)
  return [indices[i:i + size] for i in range(0, len(indices), size)]


def train_trials(configs, trial_ids, data, num_classes, seed, max_parallel, on_epoch=None,
                 checkpointer=None):
  """Trains every trial config to its last epoch, bucket by bucket and chunk by chunk.

  Returns one result dict per trial, in input order. `on_epoch(population, metrics, seconds)` is
  called after each epoch of each chunk (for progress lines). A short chunk is padded with copies
  of its first member (to reuse the chunk program, and to a multiple of the device count with at
  least MIN_MEMBERS on every device, so that all devices hold as many); the copies are dropped.
  With a `checkpointer` (bnlab.checkpoint) a finished chunk is journaled and not trained again,
  and a chunk in flight continues from its last checkpointed epoch.
  """
  results = [None] * len(configs)
  data = parallel.put(data, parallel.replicated(parallel.member_mesh()))  # Placed once for all.
  for bucket in buckets(configs):
    parts = chunks(bucket, member_limit(max_parallel))
    for chunk in parts:
      members = chunk + [chunk[0]] * (padded_size(len(parts[0])) - len(chunk))
      key = None
      if checkpointer:
        key = checkpointer.chunk_key([configs[i] for i in members],
                                     [trial_ids[i] for i in members], seed)
        done = checkpointer.load_chunk(key)
        if done is not None:
          for i, result in zip(chunk, done):
            results[i] = result
          continue
      chunk_results = _train_chunk([configs[i] for i in members], [trial_ids[i] for i in members],
                                   len(chunk), data, num_classes, seed, on_epoch, checkpointer, key)
      for i, result in zip(chunk, chunk_results):
        results[i] = result
      if checkpointer:
        checkpointer.save_chunk(key, chunk_results)
  return results


def _train_chunk(configs, trial_ids, count, data, num_classes, seed, on_epoch, checkpointer, key):
  """Trains one chunk's population (resuming it when checkpointed); the first `count` results."""
  start = time.perf_counter()
  population = Population.create(configs, trial_ids, data, num_classes, seed,
                                 config_seeds(configs, seed))
  history, seconds_before = [], 0.0
  if checkpointer:
    history, seconds_before, _ = population.restore(checkpointer, key)
    if population.epoch:
      logging.info('trials %s resume after epoch %d', list(trial_ids[:count]), population.epoch)
  epochs = population.static.train.epochs
  while population.epoch < epochs:
    epoch_start = time.perf_counter()
    history.append(population.run_epoch(data))
    if on_epoch:
      on_epoch(population, history[-1], time.perf_counter() - epoch_start)
    # Not after the last epoch: the chunk's results go to the journal right after its test.
    if checkpointer and population.epoch < epochs and checkpointer.due(population.epoch, epochs):
      population.save(checkpointer, key, history, seconds_before + time.perf_counter() - start)
  test = population.evaluate_test(data)
  seconds = (seconds_before + time.perf_counter() - start) / len(configs)
  return [member_result(trial_ids[k], k, history, test, population, seconds)
          for k in range(count)]


def member_result(trial, k, history, test, population, seconds):
  """Member k's final metrics and per-epoch history; a diverged member gets no metric values."""
  diverged_epoch = int(population.diverged_epoch[k])
  rows = [{'epoch': e + 1, **{m: float(v[k]) for m, v in h.items() if m != 'diverged'}}
          for e, h in enumerate(history)]
  final = dict(rows[-1])
  final['test_accuracy'] = float(test['accuracy'][k])
  if diverged_epoch >= 0:
    final = dict.fromkeys(final, float('nan'))
  return {'trial': int(trial), 'status': 'diverged' if diverged_epoch >= 0 else 'ok',
          'val_accuracy': final['val_accuracy'], 'val_loss': final['val_loss'],
          'test_accuracy': final['test_accuracy'], 'train_loss': final['train_loss'],
          'epochs': len(history), 'diverged_epoch': diverged_epoch + 1 if diverged_epoch >= 0
          else None, 'seconds': seconds, 'history': rows,
          **{k: v for k, v in final.items() if k.endswith('_running')}}  # model.bn_eval's gap.
