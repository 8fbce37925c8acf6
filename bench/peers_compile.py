"""Where bnlab's compile time goes: each program's compile seconds, with and without bnlab's
compiler options (the measured reason for `programs.INIT_COMPILER_OPTIONS`).

    python -m bench.peers_compile --workload=digits-3x128 --n=64 --data_dir=/tmp/bench/tfds

Prints one JSON line: per variant ('bnlab', 'xla_default') and program ('init', 'epoch',
'test'), the median over --repeats of the compile's process CPU seconds (steadier than wall
seconds on a shared machine) and wall seconds. No persistent cache is on in this process.
"""

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp

from bench import peers_common as common


def _abstract_inputs(n, data):
  from bnlab import member  # pylint: disable=import-outside-toplevel
  from bnlab import optim  # pylint: disable=import-outside-toplevel
  shaped = lambda a, dtype=None: jax.ShapeDtypeStruct(a.shape, dtype or a.dtype)
  hparams = {section: {k: jax.ShapeDtypeStruct((n,), jnp.float32) for k in keys}
             for section, keys in (('optimizer', optim.HPARAMS),
                                   ('model', member.MODEL_HPARAMS))}
  seeds = jax.ShapeDtypeStruct((n,), jnp.int32)
  scalar = jax.ShapeDtypeStruct((), jnp.int32)
  return hparams, seeds, scalar, {k: shaped(v) for k, v in data.items()}


def compile_seconds(spec, n, data, init_options):
  """{program: (cpu s, wall s)} of compiling init (with `init_options`), epoch and test of the
  member spec `spec` (bnlab.member.make_spec)."""
  from bnlab import member  # pylint: disable=import-outside-toplevel
  hparams, seeds, scalar, d = _abstract_inputs(n, data)
  init = jax.jit(jax.vmap(functools.partial(member.init_member, spec), in_axes=(0, 0, None)))
  state = jax.eval_shape(init, hparams, seeds, d['x_train'])
  epoch = jax.jit(jax.vmap(functools.partial(member.epoch_and_eval, spec),
                           in_axes=(0,) + (None,) * 6), donate_argnums=0)
  test = jax.jit(jax.vmap(functools.partial(member.evaluate, spec), in_axes=(0, None, None)))
  lowered = {'init': (init.lower(hparams, seeds, d['x_train']), init_options),
             'epoch': (epoch.lower(state, d['x_train'], d['y_train'], d['x_val'], d['y_val'],
                                   scalar, scalar), None),
             'test': (test.lower(state, d['x_test'], d['y_test']), None)}
  out = {}
  for name, (low, options) in lowered.items():
    cpu, wall = time.process_time(), time.perf_counter()
    low.compile(options)
    out[name] = (time.process_time() - cpu, time.perf_counter() - wall)
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--workload', choices=tuple(common.WORKLOADS), default='digits-3x128')
  parser.add_argument('--n', type=int, default=64)
  parser.add_argument('--repeats', type=int, default=2)
  parser.add_argument('--data_dir', default='')
  args = parser.parse_args()
  from bnlab import data as data_lib  # pylint: disable=import-outside-toplevel
  from bnlab import member  # pylint: disable=import-outside-toplevel
  from bnlab import programs  # pylint: disable=import-outside-toplevel
  spec = common.workload(args.workload)
  _, configs = common.trial_configs(common.bnlab_config(spec, args.data_dir, args.n))
  data, num_classes = data_lib.load(configs[0].dataset)
  member_spec = member.make_spec(member.static_config(configs[0]), num_classes,
                                 data['x_train'].shape[0])
  variants = {'bnlab': programs.INIT_COMPILER_OPTIONS, 'xla_default': None}
  runs = {name: [] for name in variants}
  for _ in range(args.repeats):
    for name, options in variants.items():  # Alternating, so load drifts hit both alike.
      runs[name].append(compile_seconds(member_spec, args.n, data, options))
  record = {name: {program: {kind: round(statistics.median(r[program][i] for r in rs), 2)
                             for i, kind in enumerate(('cpu', 'wall'))}
                   for program in rs[0]} for name, rs in runs.items()}
  common.emit({'system': 'bnlab_compile', 'n': args.n, 'workload': args.workload, **record})


if __name__ == '__main__':
  main()
