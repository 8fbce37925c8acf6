"""bnlab against the systems users would pick instead, side by side in one run.

    python bench/run.py                                  # everything; writes BENCHMARKS.md
    python bench/run.py --sizes=16,64 --repeats=1        # a shorter run
    python bench/run.py --smoke                          # JAX systems only, tiny: CI's check

Every measurement runs in a fresh process, one after another (never two at once), so each
system's seconds and peak memory are its own and the ratios come from the same run. Per size N
of each workload: bnlab end to end (`launch.py` as a whole process, compile included, with an
empty compilation cache, then again with the cache the first run left), bnlab in process
(compile seconds, steady-state epoch seconds -> model-FLOPs utilisation against the matmul peak
measured in the same run), bnlab driven one step per Python call, and the peers of
bench/peers_*.py. Sequential peers run a few trials and are extrapolated to N (said in the
table); the torch.func ensemble runs its N members for a few epochs, extrapolated to all.
The "## Peers" and "## Targets" sections of --out are replaced; other sections are kept.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import peers_common as common  # pylint: disable=g-import-not-at-top
from bench import peers_report as report  # pylint: disable=g-import-not-at-top

JAX_SYSTEMS = ('bnlab', 'bnlab_steady', 'bnlab_per_step', 'flax_loop', 'flax_loop_injected')
TORCH_SYSTEMS = ('optuna_torch', 'torch_func')
MODULES = {'bnlab_steady': 'bench.peers_bnlab', 'bnlab_per_step': 'bench.peers_bnlab',
           'matmul_peak': 'bench.peers_bnlab', 'flax_loop': 'bench.peers_flax',
           'flax_loop_injected': 'bench.peers_flax', 'optuna_torch': 'bench.peers_torch',
           'torch_func': 'bench.peers_torch'}


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sizes', default='16,64,256,1024', help='Trial counts N.')
  parser.add_argument('--workloads', default='digits-3x128,digits-3x32',
                      help=f'Of: {", ".join(common.WORKLOADS)}.')
  parser.add_argument('--systems', default=','.join(JAX_SYSTEMS + TORCH_SYSTEMS))
  parser.add_argument('--repeats', type=int, default=3, help='Runs of everything; medians.')
  parser.add_argument('--max_trials', type=int, default=4,
                      help='Trials a sequential peer runs before extrapolating to N.')
  parser.add_argument('--partial_epochs', type=int, default=2,
                      help='Epochs of the in-process runs (bnlab steady/per-step, torch.func).')
  parser.add_argument('--torch_func_max_n', type=int, default=256,
                      help='Largest N the torch.func ensemble runs at (it is slow).')
  parser.add_argument('--epochs', type=int, default=0, help='Override the workloads\' epochs.')
  parser.add_argument('--workdir', default=os.path.join(tempfile.gettempdir(), 'bnlab-bench'))
  parser.add_argument('--data_dir', default='',
                      help='TFDS data dir the datasets are built into; default <workdir>/tfds.')
  parser.add_argument('--out', default=os.path.join(ROOT, 'BENCHMARKS.md'))
  parser.add_argument('--append', action='store_true',
                      help='Keep the records of earlier runs in --workdir (other sizes).')
  parser.add_argument('--note', default='', help='A sentence about this run for the report.')
  parser.add_argument('--render_only', action='store_true',
                      help='Measure nothing: rewrite --out from --workdir/records.json.')
  parser.add_argument('--smoke', action='store_true',
                      help='Tiny: N=2, one epoch, JAX systems only, one repeat, out in workdir.')
  args = parser.parse_args(argv)
  if args.smoke:
    args.sizes, args.workloads, args.systems = '2', 'digits-3x32', ','.join(JAX_SYSTEMS)
    args.repeats, args.max_trials, args.partial_epochs, args.epochs = 1, 1, 1, 1
    args.out = os.path.join(args.workdir, 'BENCHMARKS.md')
  args.sizes = [int(s) for s in args.sizes.split(',')]
  args.workloads = args.workloads.split(',')
  args.systems = args.systems.split(',')
  for name in args.systems:
    if name not in JAX_SYSTEMS + TORCH_SYSTEMS:
      parser.error(f'--systems: {name!r} is not one of {JAX_SYSTEMS + TORCH_SYSTEMS}')
  for name in args.workloads:
    if name not in common.WORKLOADS:
      parser.error(f'--workloads: {name!r} is not one of {tuple(common.WORKLOADS)}')
  return args


LAST_CPU_SECONDS = [0.0]  # Of the last child: a figure the machine's load disturbs less.


def run_child(command, env=None):
  """Runs `command` to its end in a child process, alone.

  Returns (wall seconds, the child's own peak RSS in MB from wait4, its last stdout line).
  The child's CPU seconds (user + system, all threads) go to LAST_CPU_SECONDS[0].
  """
  with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err,
                            env={**os.environ, **(env or {})})
    _, status, rusage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    if proc.returncode != 0:
      raise RuntimeError(f'{" ".join(command)} failed ({proc.returncode}):\n'
                         f'{err.read().decode(errors="replace")[-3000:]}')
    lines = out.read().decode(errors='replace').strip().splitlines()
  LAST_CPU_SECONDS[0] = rusage.ru_utime + rusage.ru_stime
  return wall, rusage.ru_maxrss / 1024, lines[-1] if lines else ''


def peer_command(system, spec, n, args):
  """The command line of one in-process measurement (a peer, bnlab steady or per-step)."""
  partial = min(spec['epochs'], args.partial_epochs)
  command = [sys.executable, '-m', MODULES[system], f'--system={system}',
             f'--workload={spec["name"]}', f'--n={n}']
  if system == 'matmul_peak':
    return command
  if system in ('bnlab_steady', 'bnlab_per_step'):
    return command + [f'--epochs={partial}', f'--data_dir={args.data_dir}']
  if system == 'torch_func':
    return command + [f'--epochs={partial}', f'--cache_dir={args.workdir}']
  return command + [f'--epochs={spec["epochs"]}', f'--max_trials={args.max_trials}',
                    f'--cache_dir={args.workdir}']


def measure_peer(system, spec, n, args):
  wall, rss, line = run_child(peer_command(system, spec, n, args))
  return {**json.loads(line), 'wall_seconds': wall, 'peak_rss_mb': rss,
          'cpu_seconds': LAST_CPU_SECONDS[0]}


def measure_bnlab(spec, n, args, repeat):
  """launch.py end to end with an empty compilation cache, then again with the cache it left."""
  cache = os.path.join(args.workdir, 'jax-cache', f'{spec["name"]}-{n}-{repeat}')
  shutil.rmtree(cache, ignore_errors=True)
  records = []
  for system in ('bnlab', 'bnlab_warm'):
    workdir = os.path.join(args.workdir, 'runs', f'{spec["name"]}-{n}-{system}')
    shutil.rmtree(workdir, ignore_errors=True)
    command = [sys.executable, 'launch.py', '--config=configs/default.py',
               f'--workdir={workdir}', *common.launch_overrides(spec, args.data_dir, n)]
    wall, rss, _ = run_child(command, {'BNLAB_COMPILATION_CACHE': cache})
    records.append({'system': system, 'n': n, 'wall_seconds': wall, 'peak_rss_mb': rss,
                    'cpu_seconds': LAST_CPU_SECONDS[0],
                    **report.results_accuracy(os.path.join(workdir, 'results.csv'))})
  shutil.rmtree(cache, ignore_errors=True)
  return records


def machine(peak):
  """What the numbers were measured on."""
  with open('/proc/cpuinfo') as f:
    models = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
  versions = {}
  for package in ('jax', 'jaxlib', 'flax', 'optax', 'torch', 'optuna'):
    try:
      versions[package] = metadata.version(package)
    except metadata.PackageNotFoundError:
      versions[package] = 'not installed'
  return {'cpu': models[0] if models else platform.processor(), 'cores': os.cpu_count(),
          'device': peak['device'], 'python': platform.python_version(), 'versions': versions,
          'load_before': os.getloadavg(), 'date': datetime.datetime.now(
              datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}


def prepare(args):
  """Builds the datasets into the TFDS dir and exports the peers' .npz arrays, untimed."""
  args.data_dir = args.data_dir or os.path.join(args.workdir, 'tfds')
  os.makedirs(args.data_dir, exist_ok=True)
  # In a child, so that this process stays small: a child's peak RSS from wait4 starts at its
  # parent's RSS when forked (Linux keeps the high-water mark across exec).
  code = ('import sys; from bench import peers_common as c; '
          '[c.export_arrays(c.workload(w), sys.argv[1], sys.argv[2]) for w in sys.argv[3:]]')
  run_child([sys.executable, '-c', code, args.data_dir, args.workdir, *args.workloads])


def measure_all(args):
  """Every (repeat, workload, N, system) measurement in a fixed order; the records."""
  records = []
  run_id = time.strftime('%H%M%S')
  for repeat in (f'{run_id}-{r}' for r in range(args.repeats)):
    records.append({**measure_peer('matmul_peak', common.workload('digits-3x32'), 0, args),
                    'repeat': repeat, 'workload': ''})
    for name in args.workloads:
      spec = common.workload(name, args.epochs)
      for n in args.sizes:
        found = []
        if 'bnlab' in args.systems:
          found += measure_bnlab(spec, n, args, repeat)
        for system in args.systems:
          if system == 'bnlab' or (system == 'torch_func' and n > args.torch_func_max_n):
            continue
          found.append(measure_peer(system, spec, n, args))
        for record in found:
          record.update(repeat=repeat, workload=name, epochs=spec['epochs'])
          print(json.dumps(record), flush=True)
        records += found
  return records


def main(argv=None):
  args = parse_args(argv)
  os.makedirs(args.workdir, exist_ok=True)
  if args.render_only:
    with open(os.path.join(args.workdir, 'records.json')) as f:
      saved = json.load(f)
    if args.note:
      saved['machine']['note'] = args.note
    print(report.update_markdown(args.out, saved['machine'], saved['records'], args))
    return
  prepare(args)
  start = time.perf_counter()
  records = measure_all(args)
  info = machine([r for r in records if r['system'] == 'matmul_peak'][0])
  info.update(load_after=os.getloadavg(), bench_seconds=time.perf_counter() - start,
              repeats=args.repeats, note=args.note,
              commands=[' '.join(['python', 'bench/run.py'] + (argv or sys.argv[1:]))])
  path = os.path.join(args.workdir, 'records.json')
  if args.append and os.path.exists(path):
    with open(path) as f:
      earlier = json.load(f)
    ran = {(r['workload'], r['n']) for r in records if r['n']}
    records += [r for r in earlier['records'] if (r['workload'], r['n']) not in ran]
    info['commands'] = earlier['machine']['commands'] + info['commands']
    info['bench_seconds'] += earlier['machine']['bench_seconds']
    info['load_before'] = earlier['machine']['load_before']
  with open(path, 'w') as f:
    json.dump({'machine': info, 'records': records}, f, indent=1)
  text = report.update_markdown(args.out, info, records, args)
  print(text)


if __name__ == '__main__':
  main()
