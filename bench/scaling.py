"""How bnlab scales with the member count N and the device count: members/s and compile s.

    python bench/scaling.py                          # N = 8 ... 4096 on 1 and 4 forced CPU devices
    python bench/scaling.py --members=8,64 --devices=1,2 --repeats=2 --out=''   # short, no file

One fresh process per device count (XLA_FLAGS=--xla_force_host_platform_device_count=D must be
set before JAX starts; on a GPU or TPU host `--devices=0` means the real devices, unforced). In it,
for each N: N random settings of one bucket (an MLP with batch norm on digits, learning rate
log-uniform) -> `population.Population.create` (compile seconds of the init/epoch/test programs,
from `Programs.compile_seconds`), one warm-up epoch, then `--repeats` timed epochs (train +
validation inside one program); the median gives members/s (member-epochs per second) and
member-steps/s.
The "## Scaling" section of --out is replaced (the file is created with a header if absent);
other sections are kept.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = '## Scaling'
sys.path.insert(0, ROOT)


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--members', default='8,32,128,512,2048,4096', help='Member counts N.')
  parser.add_argument('--devices', default='1,4',
                      help='Forced CPU device counts, one process each; 0 = the real devices.')
  parser.add_argument('--widths', default='32,32', help='MLP hidden sizes.')
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--repeats', type=int, default=3, help='Timed epochs after one warm-up.')
  parser.add_argument('--data_dir', default='', help='TFDS data dir ("" = TFDS default).')
  parser.add_argument('--note', default='', help='A line about the machine (e.g. "loaded").')
  parser.add_argument('--out', default=os.path.join(ROOT, 'BENCHMARKS.md'),
                      help='Markdown file whose "## Scaling" section is rewritten; "" = none.')
  parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
  return parser.parse_args(argv)


def bench_config(args, num_members):
  from configs import default  # pylint: disable=import-outside-toplevel
  config = default.get_config()
  config.dataset.data_dir = args.data_dir
  config.model.widths = tuple(int(w) for w in args.widths.split(','))
  config.train.batch_size = args.batch_size
  config.train.epochs = args.repeats + 1  # Constant schedule: epochs only bound the loop.
  config.sweep.num_trials = num_members
  config.sweep.space.optimizer.learning_rate = 'log_uniform(1e-3, 1e-1)'
  return config


def measure(args, num_members):
  """One N in this process: compile seconds and the timed epochs of one population."""
  from bench import peers_common  # pylint: disable=import-outside-toplevel
  from bnlab import data as data_lib  # pylint: disable=import-outside-toplevel
  from bnlab import population as population_lib  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  config = bench_config(args, num_members)
  settings, configs = peers_common.trial_configs(config)
  data, num_classes = data_lib.load(config.dataset)
  cpu_start = time.process_time()
  population = population_lib.Population.create(configs, settings, list(range(num_members)),
                                                data, num_classes, config.seed)
  compile_cpu = time.process_time() - cpu_start
  seconds, cpu = [], []
  for _ in range(args.repeats + 1):
    start, cpu_start = time.perf_counter(), time.process_time()
    population.run_epoch(data)  # Returns host metrics: the epoch has finished.
    seconds.append(time.perf_counter() - start)
    cpu.append(time.process_time() - cpu_start)
  steady = statistics.median(seconds[1:])
  steps = data['y_train'].shape[0] // config.train.batch_size
  state_bytes = sum(leaf.nbytes for leaf in jax.tree.leaves(population.state))
  return {'devices': jax.device_count(), 'platform': jax.devices()[0].platform,
          'members': num_members, 'compile_s': population.programs.compile_seconds,
          'compile_cpu_s': compile_cpu, 'epoch_cpu_s': statistics.median(cpu[1:]),
          'epoch_s': steady, 'epoch_s_all': seconds, 'members_per_s': num_members / steady,
          'member_steps_per_s': num_members * steps / steady, 'steps_per_epoch': steps,
          'state_mib': state_bytes / 2**20,
          'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10}


def worker(args):
  for n in (int(m) for m in args.members.split(',')):
    print('RESULT ' + json.dumps(measure(args, n)), flush=True)


def run_devices(args, devices):
  """A fresh process for one device count; its RESULT lines as dicts."""
  env = dict(os.environ)
  if devices:
    env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  argv = [a for a in sys.argv[1:] if not a.startswith('--out')]
  result = subprocess.run([sys.executable, os.path.abspath(__file__), '--worker', *argv],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
  if result.returncode != 0:
    raise SystemExit(f'devices={devices} failed:\n{result.stderr[-3000:]}')
  return [json.loads(line[len('RESULT '):]) for line in result.stdout.splitlines()
          if line.startswith('RESULT ')]


def table(rows):
  """A markdown table, one row per (devices, N), with the speed-up over the fewest devices."""
  base = {r['members']: r['members_per_s'] for r in rows if r['devices'] == rows[0]['devices']}
  lines = ['| devices | N | compile s (CPU s) | epoch s (CPU s) | members/s | member-steps/s | '
           f'vs {rows[0]["devices"]} device(s) | state MiB | process peak RSS MiB |',
           '|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
  for r in rows:
    lines.append(f'| {r["devices"]} | {r["members"]} | {r["compile_s"]:.1f} '
                 f'({r["compile_cpu_s"]:.1f}) | {r["epoch_s"]:.3f} ({r["epoch_cpu_s"]:.3f}) '
                 f'| {r["members_per_s"]:.0f} | {r["member_steps_per_s"]:.0f} '
                 f'| {r["members_per_s"] / base[r["members"]]:.2f}x | {r["state_mib"]:.1f} '
                 f'| {r["peak_rss_mib"]:.0f} |')
  return lines


def machine():
  with open('/proc/cpuinfo') as f:
    models = [l.split(':', 1)[1].strip() for l in f if l.startswith('model name')]
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  return {'cpu': models[0] if models else platform.processor(), 'cores': os.cpu_count(),
          'jax': metadata.version('jax'), 'python': platform.python_version()}


def header(info):
  return ['# bnlab benchmarks', '',
          f'Machine: {info["cores"]} CPU cores ({info["cpu"]}), Python {info["python"]}, '
          f'jax {info["jax"]}. No GPU or TPU was lent to these runs.', '']


def section(args, info, rows):
  steps = rows[0]['steps_per_epoch']
  lines = [SECTION, '',
           f'`python bench/scaling.py --members={args.members} --devices={args.devices} '
           f'--repeats={args.repeats}` ({time.strftime("%Y-%m-%d", time.gmtime())}, '
           f'{info["cores"]} cores of {info["cpu"]}, jax {info["jax"]}, CPU only: no GPU/TPU '
           'was lent to this task). One bucket: MLP widths '
           f'({args.widths}) with batch norm, Adam, digits ({steps} steps of batch '
           f'{args.batch_size} per epoch, then validation), learning rate log-uniform per member. '
           'members/s = member-epochs per second, the median of the timed epochs after one '
           'warm-up; compile s = init + epoch + test programs (`Programs.compile_seconds`); '
           'CPU s in brackets is the process CPU time of the same span (all threads), which a '
           'loaded machine inflates less than wall time. '
           'Forced CPU devices share the machine\'s cores (each runs its shard of the members on '
           'its own thread), so a CPU speed-up there is the cores being used more fully, not more '
           'hardware; on GPU/TPU hosts each device is real hardware. Peak memory per device is '
           'not reported by JAX on CPU; the process peak RSS is given instead.', '']
  if args.note:
    lines += [args.note, '']
  return lines + table(rows) + [''] + reading(rows) + ['']


def reading(rows):
  """What the table says, computed from it: compile cost against N, speed-up at the largest N."""
  compile_cpu = [r['compile_cpu_s'] for r in rows]
  largest = max(r['members'] for r in rows)
  at_largest = {r['devices']: r['members_per_s'] for r in rows if r['members'] == largest}
  fewest = min(at_largest)
  lines = [f'Compile: {min(compile_cpu):.1f}-{max(compile_cpu):.1f} CPU s for every N from '
           f'{min(r["members"] for r in rows)} to {largest} and every device count: one compile '
           'per bucket, whatever its size.']
  for devices, rate in sorted(at_largest.items()):
    if devices != fewest:
      lines.append(f'At N={largest}, {devices} devices train {rate / at_largest[fewest]:.2f}x '
                   f'the members/s of {fewest} ({rate:.0f} vs {at_largest[fewest]:.0f}).')
  return [' '.join(lines)]


def replace_section(text, new_lines):
  """`text` with its '## Scaling' section replaced (or appended); other sections kept."""
  lines, out, skipping = text.splitlines(), [], False
  for line in lines:
    if line.startswith('## '):
      skipping = line.strip() == SECTION
    if not skipping:
      out.append(line)
  while out and not out[-1].strip():
    out.pop()
  return '\n'.join(out + [''] + new_lines)


def main(argv):
  args = parse_args(argv)
  if args.worker:
    return worker(args)
  rows = [r for d in args.devices.split(',') for r in run_devices(args, int(d))]
  info = machine()
  lines = section(args, info, rows)
  print('\n'.join(lines))
  if args.out:
    text = open(args.out).read() if os.path.exists(args.out) else '\n'.join(header(info))
    with open(args.out, 'w') as f:
      f.write(replace_section(text, lines))
  return None


if __name__ == '__main__':
  main(sys.argv[1:])
