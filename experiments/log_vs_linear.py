"""Log scale vs linear scale: sampling the learning rate in (1e-4, 1) two ways.

Uniform sampling puts 90% of the trials in the top decade (0.1, 1) and 0.01% in the bottom one;
log-uniform sampling gives each decade a quarter. With Adam, whose good learning rates sit near
1e-3, the linear sweep spends almost all of its trials where nothing works.

    python experiments/log_vs_linear.py [--workdir=runs/exp_log_vs_linear] [--small]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

from bnlab import space  # pylint: disable=g-import-not-at-top
from experiments import common  # pylint: disable=g-import-not-at-top

FIELD = 'optimizer.learning_rate'
SPECS = {'linear': 'uniform(1e-4, 1.0)', 'log': 'log_uniform(1e-4, 1.0)'}
DECADES = np.logspace(-4, 0, 5)


def decade_shares(values):
  """The share of values in each decade (1e-4..1e-3, ..., 0.1..1)."""
  counts, _ = np.histogram(values, bins=DECADES)
  return counts / len(values)


def run(workdir, small=False, data_dir=''):
  report = common.Report(workdir, 'Learning rate on a log scale vs a linear scale')
  widths, epochs, num = ((16,), 2, 25) if small else ((128, 128), 10, 100)
  # No batch norm: with it Adam tolerates large learning rates and the scales differ less.
  base = common.config(data_dir, **{'model.widths': widths, 'train.epochs': epochs,
                                    'model.norm': 'none'})
  data, num_classes = common.load(base)
  rows, numbers, found = [], {}, {}
  for name, text in SPECS.items():
    settings = space.random_trials({FIELD: space.parse(text)}, 0, num)
    acc = common.metric(common.sweep(base, settings, data, num_classes, max_parallel=50))
    lrs = np.array([s[FIELD] for s in settings])
    shares = decade_shares(lrs)
    found[name] = (lrs, acc, shares)
    numbers[f'{name}_shares'] = shares.tolist()
    numbers[f'{name}_best'] = float(acc.max())
    numbers[f'{name}_best_lr'] = float(lrs[acc.argmax()])
    numbers[f'{name}_good'] = int((acc >= 0.9).sum())
    rows.append([name, *[f'{100 * x:.0f}%' for x in shares], acc.max(), f'{lrs[acc.argmax()]:.2g}',
                 numbers[f'{name}_good']])
  report.add(f'MLP {widths} without normalization, Adam, {epochs} epochs on digits; {num} '
             'trials per scale, same seed.', '')
  report.table(['sampling', '1e-4..1e-3', '1e-3..1e-2', '1e-2..0.1', '0.1..1', 'best val acc',
                'at lr', 'trials ≥ 0.90'], rows)
  _plot(report, found)
  return report.write(numbers)


def _plot(report, found):
  fig, (ax1, ax2) = common.subplots(2)
  centers = np.sqrt(DECADES[:-1] * DECADES[1:])
  for k, (name, (lrs, acc, shares)) in enumerate(found.items()):
    ax1.bar(centers * (0.8 if k == 0 else 1.25), shares, width=centers * 0.5, label=name)
    ax2.scatter(lrs, acc, s=14, alpha=0.7, label=f'{name} sampling')
  for ax in (ax1, ax2):
    ax.set_xscale('log')
    ax.set_xlabel('learning rate (log scale)')
    ax.legend(fontsize=8)
  ax1.set_ylabel('share of trials in the decade')
  ax2.set_ylabel('validation accuracy')
  report.figure('log_vs_linear', fig, 'share of trials per decade; accuracy vs learning rate')


if __name__ == '__main__':
  common.main(run, 'log_vs_linear')
