"""bnlab in process: compile seconds, steady-state epoch time and MFU; and the matmul peak.

    python -m bench.peers_bnlab --system=bnlab_steady --workload=digits-3x128 --n=256 \
        --data_dir=/tmp/bench/tfds
    python -m bench.peers_bnlab --system=bnlab_per_step ...   # the same math, a step per call
    python -m bench.peers_bnlab --system=matmul_peak

`bnlab_steady` builds the sweep exactly as launch.py does (`sweep.prepare`, `data.load`) and
drives a `population.Population`: the compile seconds, then every epoch's seconds (the first
one after compiling is dropped from the median). bnlab has no per-step Python loop mode: its epoch
is one `lax.scan`. `bnlab_per_step` builds one by jitting the vmapped `member.train_step` and
calling it from Python per batch, which measures what the scan saves. `matmul_peak` is the
practical peak the MFU is measured against: a 2048x2048 f32 matmul under XLA.
"""

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench import peers_common as common

PEAK_SIZE = 2048


def matmul_peak(repeats=20):
  """FLOP/s of a PEAK_SIZE^2 f32 matmul under XLA: the median over `repeats` calls."""
  a = jax.random.normal(jax.random.key(0), (PEAK_SIZE, PEAK_SIZE), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  matmul(a, a).block_until_ready()
  seconds, cpu_seconds = [], []
  for _ in range(repeats):
    start, cpu = time.perf_counter(), time.process_time()
    matmul(a, a).block_until_ready()
    seconds.append(time.perf_counter() - start)
    cpu_seconds.append(time.process_time() - cpu)
  return {'peak_flops': 2 * PEAK_SIZE ** 3 / statistics.median(seconds),
          'peak_flops_per_cpu_second': 2 * PEAK_SIZE ** 3 / statistics.median(cpu_seconds),
          'best_flops': 2 * PEAK_SIZE ** 3 / min(seconds), 'device': jax.devices()[0].device_kind}


def _population(spec, data_dir, n):
  from bnlab import data as data_lib  # pylint: disable=import-outside-toplevel
  from bnlab import member  # pylint: disable=import-outside-toplevel
  from bnlab import parallel  # pylint: disable=import-outside-toplevel
  from bnlab import population as population_lib  # pylint: disable=import-outside-toplevel
  from bnlab import programs as programs_lib  # pylint: disable=import-outside-toplevel
  settings, configs = common.trial_configs(common.bnlab_config(spec, data_dir, n))
  data, num_classes = data_lib.load(configs[0].dataset)
  cpu = time.process_time()
  # The programs Population.create takes from compile_programs' cache: its arguments exactly.
  member_spec = member.make_spec(member.static_config(configs[0]), num_classes,
                                 data['x_train'].shape[0])
  programs = programs_lib.compile_programs(member_spec, n, programs_lib.data_shapes(data), False,
                                           parallel.member_mesh(), False)
  # CPU seconds of the compile alone (all threads; not the init program's run, which grows
  # with N): steadier than wall seconds on a shared machine.
  compile_cpu = time.process_time() - cpu
  population = population_lib.Population.create(configs, settings, list(range(n)), data,
                                                num_classes, common.SEED)
  jax.block_until_ready(population.state)
  assert population.programs is programs, 'Population.create compiled again: match its call'
  return population, data, num_classes, compile_cpu


def _flops(spec, data, num_classes):
  features = int(np.prod(data['x_train'].shape[1:]))
  return common.member_epoch_flops(features, spec['widths'], num_classes,
                                   data['x_train'].shape[0], data['x_val'].shape[0])


def steady(spec, data_dir, n):
  """Compile seconds, each epoch's seconds and accuracy of an n-member bnlab population."""
  population, data, num_classes, compile_cpu = _population(spec, data_dir, n)
  epoch_seconds, epoch_cpu_seconds = [], []
  for _ in range(spec['epochs']):
    start, cpu = time.perf_counter(), time.process_time()
    metrics = population.run_epoch(data)  # Returns host arrays: the epoch is finished.
    epoch_seconds.append(time.perf_counter() - start)
    epoch_cpu_seconds.append(time.process_time() - cpu)
  acc = np.where(metrics['diverged'], np.nan, metrics['val_accuracy'])
  return {'compile_seconds': population.programs.compile_seconds,
          'compile_cpu_seconds': compile_cpu, 'epoch_seconds': epoch_seconds,
          'epoch_cpu_seconds': epoch_cpu_seconds,
          'member_epoch_flops': _flops(spec, data, num_classes),
          **common.accuracy_summary(acc)}


def per_step(spec, data_dir, n):
  """The same members driven one jitted vmapped step per Python call (no scan): epoch seconds."""
  from bnlab import member  # pylint: disable=import-outside-toplevel
  population, data, num_classes, _ = _population(spec, data_dir, n)
  x, y = data['x_train'], data['y_train']
  step = jax.jit(jax.vmap(functools.partial(member.train_step, population.spec),
                          in_axes=(0, None, None)), donate_argnums=0)
  state, epoch_seconds = population.state, []
  for epoch in range(spec['epochs']):
    start = time.perf_counter()
    order = np.asarray(member.epoch_order(common.SEED, epoch, x.shape[0], common.BATCH_SIZE))
    for idx in order:
      state, loss = step(state, x[idx], y[idx])
    float(loss.mean())  # One host sync per epoch, as the scan program has.
    epoch_seconds.append(time.perf_counter() - start)
  return {'epoch_seconds': epoch_seconds, 'member_epoch_flops': _flops(spec, data, num_classes)}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--system', choices=('bnlab_steady', 'bnlab_per_step', 'matmul_peak'),
                      required=True)
  parser.add_argument('--workload', choices=tuple(common.WORKLOADS), default='digits-3x128')
  parser.add_argument('--epochs', type=int, default=0)
  parser.add_argument('--n', type=int, default=0)
  parser.add_argument('--data_dir', default='')
  args = parser.parse_args()
  from bnlab import parallel  # pylint: disable=import-outside-toplevel
  parallel.use_cpu_cores()  # The devices launch.py makes (the 2048^2 peak is the same on them).
  spec = common.workload(args.workload, args.epochs)
  if args.system == 'matmul_peak':
    record = matmul_peak()
  elif args.system == 'bnlab_steady':
    record = steady(spec, args.data_dir, args.n)
  else:
    record = per_step(spec, args.data_dir, args.n)
  common.emit({'system': args.system, 'n': args.n, 'jax': jax.__version__, **record})


if __name__ == '__main__':
  main()
