"""The compiled programs of a bucket: the member functions vmapped over [N], sharded, compiled once.

`compile_programs` turns bnlab.member's one-member init, epoch and test functions into three
ahead-of-time compiled programs over N stacked members: the member axis is split over every
device (`jax.sharding`, shard_map with no collective: members never talk to each other), the
data is replicated, and on a CPU each device trains its members a block at a time. Machinery that
exists for the CPU (member blocks, the init's optimization level) lives here and nowhere else.
"""

import concurrent.futures
import dataclasses
import functools
import os
import time
from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from bnlab import executables
from bnlab import files
from bnlab import member
from bnlab import models
from bnlab import optim
from bnlab import parallel

# XLA drops a member axis of size 1 and then picks other kernels, whose float noise Adam grows
# into lr-sized steps; with at least two members a trial re-run alone keeps its sweep arithmetic.
MIN_MEMBERS = 2
# The init program runs once per chunk and is all elementwise random-number code: LLVM's
# optimizer costs most of its compile for no runtime gain (BENCHMARKS.md, engine change 1).
INIT_COMPILER_OPTIONS = {'xla_backend_optimization_level': 0}
# On a CPU the epoch program trains its members about BLOCK_BYTES of state and gradients at a
# time (a lax.map over member blocks, each a vmap), so that a block stays in the caches through
# its steps (BENCHMARKS.md, engine changes 3 and 5). $BNLAB_BLOCK_BYTES sets it for other caches.
BLOCK_BYTES = int(os.environ.get('BNLAB_BLOCK_BYTES', 4 * 2**20))
CACHE_ENV = 'BNLAB_COMPILATION_CACHE'  # A folder; '' or 'off' turns the cache off.
DEFAULT_CACHE_DIR = os.path.join('~', '.cache', 'bnlab', 'jax')
DATA_NAMES = ('x_train', 'y_train', 'x_val', 'y_val', 'x_test', 'y_test')
DataShapes = tuple[tuple[tuple[int, ...], Any], ...]  # (shape, dtype) of each of DATA_NAMES.


def enable_compilation_cache(path: str | None = None, jax_cache: bool = True) -> str | None:
  """Keeps compiled programs so that a re-run of a sweep skips compiling, and says where.

  The folder is `path`, else $BNLAB_COMPILATION_CACHE, else ~/.cache/bnlab/jax; an empty value
  or 'off' keeps nothing. `compile_programs` keeps its programs in bnlab.executables' entries
  there, which a launch loads without tracing; with `jax_cache`, JAX's persistent compilation
  cache is turned on there too, for every other program and for the buckets bnlab.executables
  does not keep (`cache_name`); a folder that is not local (gs://) gets JAX's cache alone.
  Returns the folder used, or None.
  """
  path = os.environ.get(CACHE_ENV, DEFAULT_CACHE_DIR) if path is None else path
  if path in ('', 'off'):
    executables.use(None)
    return None
  path = os.path.expanduser(path)
  local = files.is_local(path)  # bnlab's entries are local files; JAX's cache also takes gs://.
  executables.use(path if local else None)
  if jax_cache or not local:
    jax.config.update('jax_compilation_cache_dir', path)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  return path


def keeps_programs(model_names: Iterable[Any]) -> bool:
  """Whether bnlab.executables can keep every program of a sweep whose models are named
  `model_names`: one process, and only bnlab's own models (a module of the user's is code that
  bnlab's key does not cover)."""
  return jax.process_count() == 1 and not any(models.is_custom(n) for n in model_names)


def cache_name(spec: member.MemberSpec, num_members: int, shapes: DataShapes, own_seeds: bool,
               own_epochs: bool, mesh: jax.sharding.Mesh) -> str | None:
  """The bnlab.executables entry of a bucket's programs; None where they are not kept."""
  if executables.folder() is None or not keeps_programs([spec.static.model.name]):
    return None
  parts = {'static': spec.static.to_dict(), 'num_classes': spec.num_classes,
           'num_train': spec.num_train, 'members': num_members,
           'shapes': [(list(shape), str(dtype)) for shape, dtype in shapes],
           'own_seeds': own_seeds, 'own_epochs': own_epochs, 'mesh': dict(mesh.shape),
           'block_bytes': BLOCK_BYTES, 'min_members': MIN_MEMBERS,
           'init_options': INIT_COMPILER_OPTIONS}
  return executables.key(parts, list(mesh.devices.flat))


@dataclasses.dataclass(frozen=True)
class Programs:
  """A bucket's three compiled programs for N members, and what compiling them cost."""
  init: Callable  # (hparams [N], seed [] or [N], x_train) -> MemberState [N]
  epoch: Callable  # (state, x, y, x_val, y_val, seed, epoch) -> (state, metrics [N])
  test: Callable  # (state, x_train, x_test, y_test) -> {'loss', 'accuracy'} [N]
  compile_seconds: float
  block: int  # Members per block of the epoch program on each device (member_block).


def data_shapes(data: dict[str, Any]) -> DataShapes:
  return tuple((data[k].shape, data[k].dtype) for k in DATA_NAMES)


def member_block(num_members: int, member_bytes: int, platform: str) -> int:
  """Members per block of a device's `num_members`: as many as hold BLOCK_BYTES, at least
  MIN_MEMBERS (all of them off a CPU, where caches are not the bottleneck)."""
  if platform != 'cpu':
    return num_members
  return min(num_members, max(MIN_MEMBERS, BLOCK_BYTES // max(member_bytes, 1)))


def in_blocks(fn: Callable, block: int, member_args: tuple[int, ...]) -> Callable:
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


def tree_bytes(tree: Any) -> int:
  """Bytes of every array (or ShapeDtypeStruct) in `tree`."""
  return sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in jax.tree.leaves(tree))


def _epoch_program(spec, state, num_members, own_seeds, own_epochs, mesh):
  """epoch_and_eval vmapped over the members, each device's own members block by block
  (shard_map: no collective, no member leaves its device); returns (function, block)."""
  epoch = jax.vmap(functools.partial(member.epoch_and_eval, spec),
                   in_axes=(0, None, None, None, None, 0 if own_seeds else None,
                            0 if own_epochs else None))
  block = member_block(num_members // mesh.size, 2 * tree_bytes(state) // num_members,
                       mesh.devices.flat[0].platform)  # The state and its gradients.
  split, whole = jax.sharding.PartitionSpec(parallel.MEMBER_AXIS), jax.sharding.PartitionSpec()
  member_args = (0,) + ((5,) if own_seeds else ()) + ((6,) if own_epochs else ())
  epoch = jax.shard_map(in_blocks(epoch, block, member_args), mesh=mesh,
                        in_specs=(split,) + (whole,) * 4 + (split if own_seeds else whole,
                                                            split if own_epochs else whole),
                        out_specs=split, check_vma=False)  # No collective to check.
  return epoch, block


def _abstract_inputs(num_members, shapes):
  """ShapeDtypeStructs of the programs' inputs: hparams [N], seeds [N], the six data arrays."""
  shaped = lambda shape, dtype=jnp.float32: jax.ShapeDtypeStruct(shape, dtype)
  hparams = {section: {k: shaped((num_members,)) for k in keys}
             for section, keys in (('optimizer', optim.HPARAMS), ('model', member.MODEL_HPARAMS))}
  (x_shape, x_dtype), _, (val_shape, _), _, (test_shape, _), _ = shapes
  data = [shaped(x_shape, x_dtype), shaped(x_shape[:1], jnp.int32),
          shaped(val_shape, x_dtype), shaped(val_shape[:1], jnp.int32),
          shaped(test_shape, x_dtype), shaped(test_shape[:1], jnp.int32)]
  return hparams, shaped((num_members,), jnp.int32), data


@functools.lru_cache(maxsize=64)
def compile_programs(spec: member.MemberSpec, num_members: int, shapes: DataShapes,
                     own_seeds: bool = False, mesh: jax.sharding.Mesh | None = None,
                     own_epochs: bool = False) -> Programs:
  """The vmapped, jitted init/epoch/test programs for N members of one bucket, compiled AOT.

  With `own_seeds` every member gets its own data order (the seed is an [N] input, so each
  member gathers its own batches); by default one order is shared and each batch gathered once.
  With `own_epochs` the epoch is an [N] input too: each member draws the order of its own epoch
  (slots whose trials started at different epochs), and gathers its own batches.
  The member axis (seeds included) is split over `mesh` (default: every device), the data
  replicated. Programs that bnlab.executables keeps (`enable_compilation_cache`) are loaded from
  there instead, with nothing traced.
  """
  start = time.perf_counter()
  mesh = mesh or parallel.member_mesh()
  name = cache_name(spec, num_members, shapes, own_seeds, own_epochs, mesh)
  kept = executables.load(name, list(mesh.devices.flat)) if name else None
  if kept:
    return Programs(*kept.programs, time.perf_counter() - start, kept.extra)
  jax_cache_hits = executables.jax_cache_hits()
  members, replicated = parallel.member_sharding(mesh), parallel.replicated(mesh)
  hparams, member_seeds, (x, y, x_val, y_val, x_test, y_test) = _abstract_inputs(
      num_members, shapes)
  scalar = jax.ShapeDtypeStruct((), jnp.int32)
  # A shared seed enters unbatched: its draw is made once and each member scales it by its own
  # init_scale, at a cost that does not grow with N (BENCHMARKS.md, engine change 13).
  seeds, seed_sharding = (member_seeds, members) if own_seeds else (scalar, replicated)
  init = jax.jit(jax.vmap(functools.partial(member.init_member, spec),
                          in_axes=(0, 0 if own_seeds else None, None)),
                 in_shardings=(members, seed_sharding, replicated), out_shardings=members)
  state = jax.eval_shape(init, hparams, seeds, x)
  init = init.lower(hparams, seeds, x)
  epoch, block = _epoch_program(spec, state, num_members, own_seeds, own_epochs, mesh)
  epochs, epoch_sharding = (member_seeds, members) if own_epochs else (scalar, replicated)
  epoch = jax.jit(epoch, donate_argnums=0,
                  in_shardings=(members,) + (replicated,) * 4 + (seed_sharding, epoch_sharding),
                  out_shardings=members)
  epoch = epoch.lower(state, x, y, x_val, y_val, seeds, epochs)
  test = jax.jit(jax.vmap(functools.partial(member.evaluate_bn, spec),
                          in_axes=(0, None, None, None)),
                 in_shardings=(members,) + (replicated,) * 3, out_shardings=members)
  test = test.lower(state, x, x_test, y_test)
  # XLA compiles without Python's lock: the epoch program (most of the time) beside the others.
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    init, epoch, test = pool.map(lambda program, options: program.compile(options),
                                 (init, epoch, test), (INIT_COMPILER_OPTIONS, None, None))
  if name and executables.jax_cache_hits() == jax_cache_hits:  # Fresh: it can be kept.
    executables.save(name, (init, epoch, test), block)
  return Programs(init, epoch, test, time.perf_counter() - start, block)


def placed_seeds(seed: int, member_seeds: np.ndarray | None, mesh: jax.sharding.Mesh) -> jax.Array:
  """The init and epoch programs' seed input: the shared `seed`, replicated, or the host [N]
  `member_seeds` (cheap to gather on the host), split over the devices like the state."""
  if member_seeds is None:
    return parallel.put(np.int32(seed), parallel.replicated(mesh))
  return parallel.put(member_seeds, parallel.member_sharding(mesh))


@functools.cache
def gather(mesh: jax.sharding.Mesh) -> Callable:
  """(state, indices) -> state[indices] on every leaf, split over `mesh` again. A jitted gather
  rather than numpy indexing, so that it also works on arrays spread over several processes."""
  return jax.jit(lambda state, indices: jax.tree.map(lambda a: a[indices], state),
                 out_shardings=parallel.member_sharding(mesh))


@functools.cache
def scatter(mesh: jax.sharding.Mesh) -> Callable:
  """(state, fresh, mask [N]) -> fresh where mask else state, leaf by leaf, on `mesh`: members
  started in place of retired ones, the others untouched (a select, no arithmetic)."""
  def where(state, fresh, mask):
    pick = lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), b, a)
    return jax.tree.map(pick, state, fresh)
  return jax.jit(where, out_shardings=parallel.member_sharding(mesh))


def member_limit(max_parallel: int) -> int:
  """`max_parallel` rounded down to a multiple of the device count, MIN_MEMBERS per device at
  least (on one device: max(max_parallel, MIN_MEMBERS))."""
  return parallel.member_limit(max_parallel, jax.device_count(), MIN_MEMBERS)


def padded_size(count: int) -> int:
  """Members of a program for `count` trials: at least MIN_MEMBERS on every device, as many on
  each (on one device: max(count, MIN_MEMBERS))."""
  return parallel.padded_members(count, jax.device_count(), MIN_MEMBERS * jax.device_count())
