"""Time to quality: how soon does each system hold a model as good as the tutorial recipe finds?

    pip install -r requirements-bench.txt   # PyTorch, for the peer
    python bench/time_to_quality.py --budget=600 --seeds=3 --workdir=/tmp/ttq
    python bench/time_to_quality.py --smoke --workdir=/tmp/ttq_smoke   # digits, seconds, no torch

Every system runs as a cold whole process (imports, data, an empty compilation cache, training;
with --keep_cache, bnlab's seeds after the first start with the programs the first kept)
on Fashion-MNIST from Debian's local files (48k train / 12k validation / 10k test), for at most
`--budget` wall seconds. The peer is bench/ttq_peer.py (Optuna TPE + MedianPruner driving
PyTorch); bnlab runs each strategy's config with the dataset switched. Both append one JSON row
per trained epoch of a trial (bnlab: the workdir's progress.jsonl), which this driver timestamps
as it appears: quality at time t is the best validation accuracy of any trial-epoch seen by t.

The headline, per seed: the peer's final best P, and for each bnlab strategy the time to reach
P, 99.5% of P and 99% of P as a ratio to the peer's time to the same mark (speedup = peer time /
bnlab time; > 1 means bnlab got there sooner). The test split is reported, never selected on.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from bench import ttq_report  # pylint: disable=g-import-not-at-top

PEER = 'optuna_tpe_median_torch'
# bnlab's systems: name -> (config file, extra overrides). Each config samples configs/sweep.py's
# space; `random` is cut to 64 trials as the issue measured it.
BNLAB = {
    'random': ('configs/sweep.py', ['--config.sweep.num_trials=64']),
    'random_median': ('configs/sweep.py', ['--config.sweep.pruner=median']),
    'halving': ('configs/halving.py', []),
    'hyperband': ('configs/hyperband.py', []),
    'tpe': ('configs/tpe.py', []),
    'pbt': ('configs/pbt.py', []),
    'gp': ('configs/gp.py', []),
    'tpe_slot': ('configs/tpe_slot.py', []),
    'gp_slot': ('configs/tpe_slot.py', ['--config.sweep.strategy=gp',
                                        '--config.sweep.gp.batch_size=8']),
}
SMOKE_BNLAB = ('halving',)
POLL_SECONDS = 0.2


def read_new_rows(path: str, offset: int) -> tuple[list[dict], int]:
  """Whole JSON lines appended to `path` since byte `offset`; a line still being written waits."""
  if not os.path.exists(path):
    return [], offset
  with open(path, 'rb') as f:
    f.seek(offset)
    chunk = f.read()
  end = chunk.rfind(b'\n') + 1
  rows = [json.loads(line) for line in chunk[:end].splitlines() if line.strip()]
  return rows, offset + end


def watch(command: list[str], rows_path: str, budget: float, log_path: str,
          env: dict | None = None) -> dict:
  """Runs `command` from a cold start, timestamps each row as it appears, kills it at `budget`.

  Returns {'rows': [...with 't'], 'exit': returncode or 'killed', 'wall': seconds}.
  """
  rows, offset = [], 0
  start = time.perf_counter()
  with open(log_path, 'w') as log:
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               env=env, start_new_session=True)
    while True:
      now = time.perf_counter() - start
      new, offset = read_new_rows(rows_path, offset)
      rows += [{**r, 't': now} for r in new]
      if process.poll() is not None or now > budget:
        break
      time.sleep(POLL_SECONDS)
    killed = process.poll() is None
    if killed:
      os.killpg(process.pid, signal.SIGKILL)
      process.wait()
    else:
      new, offset = read_new_rows(rows_path, offset)
      rows += [{**r, 't': min(time.perf_counter() - start, budget)} for r in new]
  return {'rows': rows, 'exit': 'killed' if killed else process.returncode,
          'wall': min(time.perf_counter() - start, budget)}


def prepare_data(args) -> str:
  """Builds the dataset once (TFDS prepare, outside every timed run) and exports bnlab's split
  as .npz for the peer, so both train on the same standardized arrays."""
  import ml_collections  # pylint: disable=import-outside-toplevel
  from bnlab import data as data_lib  # pylint: disable=import-outside-toplevel
  path = os.path.join(args.workdir, f'{args.dataset}.npz')
  if not os.path.exists(path):
    name = data_lib.tfds_name(ml_collections.ConfigDict({'name': args.dataset, 'manual_dir': ''}))
    arrays, num_classes = data_lib.load_numpy(name, args.data_dir, '', 0.2)
    np.savez(path, num_classes=num_classes, **arrays)
  return path


def bnlab_run(args, name: str, seed: int) -> dict:
  config, overrides = BNLAB[name]
  workdir = os.path.join(args.workdir, f'{name}_seed{seed}')
  shutil.rmtree(workdir, ignore_errors=True)  # The driver's own output from a previous run.
  kept = name if args.keep_cache else f'{name}_seed{seed}'
  cache = os.path.join(args.workdir, 'jax_cache', kept)
  if seed == 0 or not args.keep_cache:
    shutil.rmtree(cache, ignore_errors=True)
  command = [sys.executable, 'launch.py', f'--config={config}', f'--workdir={workdir}',
             f'--config.dataset.name={args.dataset}', f'--config.dataset.data_dir={args.data_dir}',
             f'--config.seed={seed}', *overrides, *args.bnlab_flags]
  env = {**os.environ, 'BNLAB_COMPILATION_CACHE': cache, 'PYTHONUNBUFFERED': '1'}
  run = watch(command, os.path.join(workdir, 'progress.jsonl'), args.budget,
              f'{workdir}.log', env)
  return {**run, 'test': best_test_from_results(workdir)}


def best_test_from_results(workdir: str) -> float | None:
  """The test accuracy of the finished sweep's best trial (best.json), None if it did not end."""
  path = os.path.join(workdir, 'best.json')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f).get('test_accuracy')


def peer_run(args, npz: str, seed: int) -> dict:
  out = os.path.join(args.workdir, f'peer_seed{seed}.jsonl')
  if os.path.exists(out):
    os.remove(out)
  command = [sys.executable, 'bench/ttq_peer.py', f'--npz={npz}', f'--seed={seed}',
             f'--out={out}']
  run = watch(command, out, args.budget, f'{out}.log')
  best = max(run['rows'], key=lambda r: r['val_accuracy'], default=None)
  return {**run, 'test': best and best['test_accuracy']}


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--budget', type=float, default=600.0, help='Wall seconds per run.')
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--systems', default=','.join([PEER, *BNLAB]),
                      help=f'Comma-separated, of {PEER}, {", ".join(BNLAB)}.')
  parser.add_argument('--workdir', default='/tmp/ttq')
  parser.add_argument('--data_dir', default='', help='TFDS data dir ("" = its default).')
  parser.add_argument('--dataset', default='fashion_mnist')
  parser.add_argument('--smoke', action='store_true',
                      help='digits, 1 seed, a 60 s budget, halving only, no PyTorch.')
  parser.add_argument('--bnlab_flags', default='', help='Extra launch.py flags for every run.')
  parser.add_argument('--keep_cache', action='store_true',
                      help="Seed 0 of a bnlab system starts cold; later seeds start with the "
                      "programs it kept (a researcher's next sweep on the same task).")
  args = parser.parse_args()
  if args.smoke:
    args.dataset, args.seeds, args.budget = 'digits', 1, 60.0
    args.systems = ','.join(SMOKE_BNLAB)
    args.bnlab_flags += ' --config.train.epochs=3 --config.sweep.num_trials=9'
  args.systems = [s.strip() for s in args.systems.split(',') if s.strip()]
  unknown = [s for s in args.systems if s != PEER and s not in BNLAB]
  if unknown:
    parser.error(f'--systems: unknown {", ".join(unknown)}; valid: {PEER}, {", ".join(BNLAB)}')
  args.bnlab_flags = args.bnlab_flags.split()
  return args


def main():
  args = parse_args()
  os.makedirs(args.workdir, exist_ok=True)
  npz = prepare_data(args)
  machine = ttq_report.machine(args)  # The load before the first run.
  runs = []  # {'system', 'seed', 'rows', 'exit', 'wall', 'test'}
  for seed in range(args.seeds):
    for system in args.systems:
      run = peer_run(args, npz, seed) if system == PEER else bnlab_run(args, system, seed)
      runs.append({'system': system, 'seed': seed, **run})
      print(f'{system} seed {seed}: {len(run["rows"])} trial-epochs, best '
            f'{ttq_report.final_best(run["rows"]):.4f}, {run["wall"]:.0f} s ({run["exit"]})',
            flush=True)
  with open(os.path.join(args.workdir, 'runs.json'), 'w') as f:
    json.dump({'machine': machine, 'runs': runs}, f)
  text = ttq_report.markdown(runs, PEER, machine)
  ttq_report.plot(runs, os.path.join(args.workdir, 'time_to_quality.png'))
  with open(os.path.join(args.workdir, 'time_to_quality.md'), 'w') as f:
    f.write(text)
  print(text)


if __name__ == '__main__':
  main()
