"""Scale-out with JAX's own machinery: the member axis sharded over every device of every process.

One 1-D `Mesh` named ('members',) spans `jax.devices()` (every process's devices, in process
order). Member state and hyperparameters are split along it with NamedSharding(mesh, P('members'));
the data is replicated. Members never talk to each other, so the partitioned programs hold no
collective at all: each device trains its own members on its own copy of the data. Multi-host runs
(a Cloud TPU pod, several GPU hosts, or processes on one machine over loopback) are JAX's
multi-controller model: every process runs the same sweep, holds the shards of its own devices,
and `jax.distributed.initialize` joins them.
"""

import functools
import os
from typing import Any, Iterable

import jax
from jax.experimental import multihost_utils
import numpy as np

from bnlab import records

MEMBER_AXIS = 'members'


def check_flags(coordinator_address: str, num_processes: int, process_id: int) -> None:
  """The distributed flags: all three together (or none); raises ConfigError before JAX starts."""
  if not coordinator_address:
    if num_processes or process_id >= 0:
      raise records.ConfigError(
          f"coordinator_address='' but num_processes={num_processes} process_id={process_id}: "
          'give host:port of process 0, or leave all three out (one process, or detected)')
    return
  if ':' not in coordinator_address:
    raise records.ConfigError(
        f'coordinator_address={coordinator_address!r} must be host:port (e.g. 10.0.0.2:1234)')
  if num_processes < 1:
    raise records.ConfigError(f'num_processes={num_processes} must be an int >= 1')
  if not 0 <= process_id < num_processes:
    raise records.ConfigError(
        f'process_id={process_id} must be in 0..{num_processes - 1} (num_processes - 1)')


def use_cpu_cores() -> None:
  """One JAX CPU device per core this process may run on; call before anything touches a device.

  XLA:CPU runs one device's small ops on about 1.4 of 2 cores; a device per core trains its own
  share of the members on its own core (faster epochs; the measurements are in BENCHMARKS.md). GPU and TPU hosts keep their accelerators as the default devices. A count the
  user set ($JAX_NUM_CPU_DEVICES, or XLA_FLAGS=--xla_force_host_platform_device_count) stays.
  """
  if (jax.config.jax_num_cpu_devices < 0
      and 'xla_force_host_platform_device_count' not in os.environ.get('XLA_FLAGS', '')):
    jax.config.update('jax_num_cpu_devices', cpu_cores())


def cpu_cores() -> int:
  """The cores this process may run on (all of the machine's where the OS cannot say)."""
  if hasattr(os, 'sched_getaffinity'):  # Linux: honours taskset and container CPU sets.
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def initialize(coordinator_address: str = '', num_processes: int = 0,
               process_id: int = -1) -> None:
  """Joins the multi-controller system; call before anything touches a device.

  With the three flags, the processes they name meet at the coordinator. Without them, JAX's
  cluster detection (Cloud TPU VMs and pod slices, Slurm, Open MPI) fills them in, and where it
  finds no cluster this is a single-process run. On a CPU each core becomes a device.
  """
  check_flags(coordinator_address, num_processes, process_id)
  use_cpu_cores()
  # CPU processes exchange arrays over gloo (TCP); GPU and TPU ignore this setting.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  if coordinator_address:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return
  try:
    jax.distributed.initialize()
  except ValueError:  # Raised only when no cluster was detected: a single process.
    pass


@functools.cache
def member_mesh() -> jax.sharding.Mesh:
  """The 1-D mesh ('members',) over every device of every process."""
  return jax.sharding.Mesh(np.asarray(jax.devices()), (MEMBER_AXIS,))


def member_sharding(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(MEMBER_AXIS))


def replicated(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def padded_members(count: int, num_devices: int, minimum: int = 1) -> int:
  """`count` members rounded up to at least `minimum` and to a multiple of the device count."""
  count = max(count, minimum)
  return -(-count // num_devices) * num_devices


def member_limit(max_parallel: int, num_devices: int, minimum_per_device: int = 1) -> int:
  """`sweep.max_parallel` rounded down to a multiple of the device count (at least the minimum)."""
  return max(max_parallel // num_devices, minimum_per_device) * num_devices


def put(tree: Any, sharding: jax.sharding.Sharding) -> Any:
  """Places every leaf of `tree` as a global array with `sharding`.

  Every process passes the same values (the same sweep, the same data); each one transfers only
  the shards that live on its own devices. A leaf already placed that way is returned as is.
  """
  def place(x):
    if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(sharding, x.ndim):
      return x
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
  return jax.tree.map(place, tree)


def to_host(tree: Any) -> Any:
  """Global arrays as numpy arrays on every process (so that all take the same decisions)."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def is_writer() -> bool:
  """Only process 0 writes the workdir; the others compute alongside it."""
  return jax.process_index() == 0


def sync(name: str) -> None:
  """Every process waits here for the others (a no-op in a single-process run)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def peak_memory_bytes() -> int | None:
  """The first local device's peak memory in use, or None where JAX reports none (CPU)."""
  stats = jax.local_devices()[0].memory_stats()
  return (stats or {}).get('peak_bytes_in_use')


def throughput(member_steps: int, members: int, seconds: float,
               compile_seconds: Iterable[float]) -> dict[str, Any]:
  """The end-of-sweep summary: members, member-steps/s, compile s per bucket, devices, memory."""
  peak = peak_memory_bytes()
  return {'members': members, 'member_steps': member_steps, 'seconds': seconds,
          'member_steps_per_second': member_steps / max(seconds, 1e-9),
          'compile_seconds': list(compile_seconds), 'devices': jax.device_count(),
          'processes': jax.process_count(), 'platform': jax.devices()[0].platform,
          'peak_memory_per_device_mib': None if peak is None else peak / 2**20}


def format_throughput(summary: dict[str, Any]) -> str:
  compile_text = ', '.join(f'{s:.1f}' for s in summary['compile_seconds'])
  memory = summary['peak_memory_per_device_mib']
  return (f'{summary["members"]} members trained, {summary["member_steps"]} member-steps in '
          f'{summary["seconds"]:.1f} s = {summary["member_steps_per_second"]:.0f} member-steps/s '
          f'on {summary["devices"]} {summary["platform"]} device(s) in {summary["processes"]} '
          f'process(es); compile s per bucket: {compile_text}; peak memory per device: '
          + ('n/a (not reported on this platform)' if memory is None else f'{memory:.0f} MiB'))
