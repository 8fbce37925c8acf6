"""What every experiment shares: its command line, its workdir (report.md, plots/, numbers.json)
and the few calls into bnlab's population loop it makes. Kept small on purpose: bnlab does the
work.

An experiment module defines `run(workdir, small=False, data_dir='')` returning its measured
numbers (a dict, also written to numbers.json) and ends with `common.main(run, 'name')`.
"""

import argparse
import json
import os
import sys
import time

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from bnlab import data as data_lib  # pylint: disable=g-import-not-at-top
from bnlab import files  # pylint: disable=g-import-not-at-top
from bnlab import population  # pylint: disable=g-import-not-at-top
from bnlab import records  # pylint: disable=g-import-not-at-top
from bnlab import space  # pylint: disable=g-import-not-at-top
from configs import default  # pylint: disable=g-import-not-at-top

DPI = 80


def config(data_dir='', dataset='digits', **overrides):
  """configs/default.py with {dotted field: value} overrides and the data dir set."""
  base = default.get_config()
  base.dataset.name = dataset
  base.dataset.data_dir = data_dir
  return space.with_overrides(base, overrides)


def load(config_):
  return data_lib.load(config_.dataset)


def train(configs, settings, data, num_classes, seed=0, max_parallel=256):
  """population.train_trials over trial configs (trial i is configs[i], with settings[i]);
  TrialRecords in input order."""
  return population.train_trials(configs, settings, list(range(len(configs))), data,
                                 num_classes, seed, max_parallel)


def sweep(base, settings, data, num_classes, seed=0, max_parallel=256):
  """Trains one trial per {field: value} setting of `base`; record i is settings[i]'s."""
  configs = [space.with_overrides(base, s) for s in settings]
  return train(configs, settings, data, num_classes, seed, max_parallel)


def metric(results, name='val_accuracy', fill=0.0):
  """One metric of every TrialRecord as an array; a diverged trial gets `fill` (0 accuracy)."""
  return np.array([r.value(name) if r.status == records.OK else fill for r in results])


class Report:
  """A markdown report and its plots, written into a workdir."""

  def __init__(self, workdir, title):
    self.workdir = workdir
    self.lines = [f'# {title}', '']
    self.start = time.perf_counter()
    os.makedirs(os.path.join(workdir, 'plots'), exist_ok=True)

  def add(self, *lines):
    self.lines.extend(lines)

  def table(self, header, rows):
    self.lines.append('| ' + ' | '.join(header) + ' |')
    self.lines.append('|' + '---|' * len(header))
    for row in rows:
      self.lines.append('| ' + ' | '.join(_fmt(c) for c in row) + ' |')
    self.lines.append('')

  def figure(self, name, fig, caption=''):
    """Saves `fig` as plots/<name>.png and links it from the report."""
    fig.tight_layout()
    fig.savefig(os.path.join(self.workdir, 'plots', f'{name}.png'), dpi=DPI)
    plt.close(fig)
    self.lines.extend([f'![{caption or name}](plots/{name}.png)', ''])

  def write(self, numbers):
    """Writes report.md and numbers.json; returns `numbers` with the run time added."""
    numbers = dict(numbers, seconds=round(time.perf_counter() - self.start, 1))
    self.lines.extend(['', f'Run time: {numbers["seconds"]:.0f} s.'])
    files.write_text(os.path.join(self.workdir, 'report.md'), '\n'.join(self.lines) + '\n')
    files.write_text(os.path.join(self.workdir, 'numbers.json'),
                     json.dumps(numbers, indent=2, default=_plain) + '\n')
    return numbers


def _plain(value):
  return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else str(value)


def _fmt(cell):
  if isinstance(cell, (float, np.floating)):
    return f'{cell:.4g}'
  return str(cell)


def subplots(ncols=1, nrows=1, width=5, height=3.5):
  fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
  for ax in axes.flat:
    ax.grid(alpha=0.3)
  return fig, axes.ravel()


def main(run, name, argv=None):
  """`python experiments/<name>.py [--workdir=runs/exp_<name>] [--small] [--data_dir=...]`."""
  parser = argparse.ArgumentParser(description=sys.modules[run.__module__].__doc__.split('\n')[0])
  parser.add_argument('--workdir', default=f'runs/exp_{name}')
  parser.add_argument('--small', action='store_true', help='the seconds-long CI version')
  parser.add_argument('--data_dir', default='', help="TFDS data dir ('' = TFDS's default)")
  args = parser.parse_args(argv)
  numbers = run(args.workdir, small=args.small, data_dir=args.data_dir)
  print(json.dumps(numbers, indent=2, default=_plain))
  print(f'report: {os.path.join(args.workdir, "report.md")}')
