"""The time-to-quality report: best-so-far curves, times to a mark, ratios, the plot.

A run is {'system', 'seed', 'rows': [{'val_accuracy', 't', ...}], 'exit', 'wall', 'test'}: every
trial-epoch the system reported, with the wall second the driver saw it.
"""

import datetime
from importlib import metadata
import math
import os
import platform
import statistics

import numpy as np

MARKS = (1.0, 0.995, 0.99)  # Fractions of the peer's final best.
KEPT = (", bnlab's seeds after the first with the programs the first kept "
        '(--keep_cache)')


def best_so_far(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
  """(t, best validation accuracy seen by t) at each row, in time order; NaNs never count."""
  rows = sorted(rows, key=lambda r: r['t'])
  t = np.array([r['t'] for r in rows], np.float64)
  values = np.array([r['val_accuracy'] for r in rows], np.float64)
  values = np.where(np.isfinite(values), values, -np.inf)
  return t, np.maximum.accumulate(values) if values.size else values


def final_best(rows: list[dict]) -> float:
  """The best validation accuracy of the whole run; NaN for a run without a finite one."""
  _, best = best_so_far(rows)
  return float(best[-1]) if best.size and np.isfinite(best[-1]) else math.nan


def time_to(rows: list[dict], target: float) -> float:
  """The first wall second at which the best so far reaches `target`; inf if it never does."""
  t, best = best_so_far(rows)
  reached = np.nonzero(best >= target)[0]
  return float(t[reached[0]]) if reached.size else math.inf


def speedups(runs: list[dict], peer: str) -> dict[str, dict[float, list[float]]]:
  """system -> mark -> [peer's time / system's time to mark x the peer's final best, per seed].

  Each seed pairs a system's run with the peer's run of the same seed. 0.0 when the system
  never reached the mark within its budget (the peer always reaches its own final best)."""
  peers = {r['seed']: r for r in runs if r['system'] == peer}
  out = {}
  for run in runs:
    if run['system'] == peer or run['seed'] not in peers:
      continue
    reference = peers[run['seed']]['rows']
    best = final_best(reference)
    for mark in MARKS:
      theirs, ours = time_to(reference, mark * best), time_to(run['rows'], mark * best)
      out.setdefault(run['system'], {}).setdefault(mark, []).append(
          theirs / ours if math.isfinite(ours) else 0.0)
  return out


def _ratio(value: float) -> str:
  return 'never' if value == 0 else f'{value:.2f}x'


def _fmt_ratio(values: list[float]) -> str:
  shown = ', '.join(_ratio(v) for v in values)
  if len(values) < 2:
    return shown
  return f'**{_ratio(statistics.median(values))}** ({shown})'


def markdown(runs: list[dict], peer: str, machine: dict) -> str:
  """The section for BENCHMARKS.md: machine, per-run table, speedup table."""
  seeds = sorted({r['seed'] for r in runs})
  lines = ['## Time to quality', '',
           f'`python bench/time_to_quality.py --budget={machine["budget"]:.0f} '
           f'--seeds={len(seeds)}{" --keep_cache" if machine.get("keep_cache") else ""}` on '
           f'{machine["dataset"]}, {machine["date"]}: '
           f'{machine["cores"]} cores ({machine["cpu"]}), load before {machine["load_before"]}, '
           f'{", ".join(f"{k} {v}" for k, v in machine["versions"].items())}. '
           f'{len(seeds)} seed{"s" if len(seeds) != 1 else ""}; each run a cold whole process'
           f'{KEPT if machine.get("keep_cache") else ""}.',
           '', '| system | seed | trial-epochs | best val | reached at (s) | test of best | end |',
           '|---|---|---|---|---|---|---|']
  for r in runs:
    best = final_best(r['rows'])
    test = '—' if r['test'] is None else f'{r["test"]:.4f}'
    lines.append(f'| {r["system"]} | {r["seed"]} | {len(r["rows"])} | {best:.4f} | '
                 f'{time_to(r["rows"], best):.0f} | {test} | {r["exit"]} after '
                 f'{r["wall"]:.0f} s |')
  table = speedups(runs, peer)
  if table:
    lines += ['', f'Speedup to the peer\'s ({peer}) final best and to 99.5% and 99% of it: the '
              'peer\'s time over the system\'s, same seed (median, then each seed; "never": '
              'not reached within the budget).', '',
              '| system | ' + ' | '.join(f'{m:.1%} of peer best' for m in MARKS) + ' |',
              '|---|' + '---|' * len(MARKS)]
    for system, marks in table.items():
      lines.append(f'| {system} | ' + ' | '.join(_fmt_ratio(marks[m]) for m in MARKS) + ' |')
  return '\n'.join(lines) + '\n'


def plot(runs: list[dict], path: str) -> None:
  """Best-so-far validation accuracy against wall seconds, one colour per system, every seed."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
  systems = list(dict.fromkeys(r['system'] for r in runs))
  colours = plt.get_cmap('tab10')
  finals = []
  for run in runs:
    t, best = best_so_far(run['rows'])
    keep = np.isfinite(best)
    if not keep.any():
      continue
    i = systems.index(run['system'])
    ax.step(np.append(t[keep], run['wall']), np.append(best[keep], best[keep][-1]),
            where='post', color=colours(i % 10), alpha=0.85, lw=1.4,
            label=run['system'] if run['seed'] == min(r['seed'] for r in runs) else None)
    finals.append(best[keep][-1])
  if finals:
    ax.set_ylim(min(finals) - 0.03, max(finals) + 0.005)
  ax.set(xlabel='wall seconds from launch (cold process)', ylabel='best validation accuracy',
         title='Time to quality: best so far, every seed')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc='lower right')
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def machine(args) -> dict:
  """What the numbers were measured on, and the run's arguments."""
  with open('/proc/cpuinfo') as f:
    models = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
  versions = {}
  for package in ('jax', 'flax', 'optax', 'torch', 'optuna'):
    try:
      versions[package] = metadata.version(package)
    except metadata.PackageNotFoundError:
      versions[package] = 'not installed'
  return {'cpu': models[0] if models else platform.processor(), 'cores': os.cpu_count(),
          'versions': versions, 'load_before': tuple(round(x, 2) for x in os.getloadavg()),
          'budget': args.budget, 'dataset': args.dataset, 'keep_cache': args.keep_cache,
          'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}
