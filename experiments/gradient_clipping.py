"""Gradient clipping: a deep tanh net trained with a learning rate where it explodes, clipped by
global norm at several thresholds (optax.clip_by_global_norm; `optimizer.clip_norm`, 0 = off).

The clip threshold is a dynamic hyperparameter, so every (learning rate, threshold) pair is one
member of one compiled program. A member whose loss turns non-finite is marked diverged and
frozen by bnlab (member.train_step).

    python experiments/gradient_clipping.py [--workdir=runs/exp_gradient_clipping] [--small]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

from bnlab import records  # pylint: disable=g-import-not-at-top
from experiments import common  # pylint: disable=g-import-not-at-top

CLIPS = (0.0, 100.0, 10.0, 1.0, 0.1)


def run(workdir, small=False, data_dir=''):
  report = common.Report(workdir, 'Gradient clipping by global norm')
  widths, epochs = ((16,) * 6, 3) if small else ((64,) * 10, 15)
  lrs = (0.1, 1.0) if small else (0.03, 0.1, 0.3, 1.0)
  # He-scaled init (2.0) on tanh and momentum SGD: large activations and gradients, no norm.
  base = common.config(data_dir, **{
      'model.widths': widths, 'model.norm': 'none', 'model.activation': 'tanh',
      'model.init_scale': 2.0, 'optimizer.name': 'momentum', 'train.epochs': epochs})
  data, num_classes = common.load(base)
  settings = [{'optimizer.learning_rate': lr, 'optimizer.clip_norm': c}
              for lr in lrs for c in CLIPS]
  results = common.sweep(base, settings, data, num_classes)
  acc = common.metric(results).reshape(len(lrs), len(CLIPS))
  diverged = np.array([r.status == records.DIVERGED for r in results]).reshape(acc.shape)
  label = lambda c: 'no clip' if c == 0 else f'clip {c:g}'
  report.add(f'MLP {widths} (tanh, no normalization, init scale 2), SGD with momentum 0.9, '
             f'{epochs} epochs on digits. Cells: final validation accuracy ("diverged" = the '
             'loss became NaN/Inf).', '')
  report.table(['learning rate', *map(label, CLIPS)],
               [[f'{lr:g}', *['diverged' if d else a for a, d in zip(acc[i], diverged[i])]]
                for i, lr in enumerate(lrs)])
  numbers = {'learning_rates': list(lrs), 'clips': list(CLIPS), 'val_accuracy': acc.tolist(),
             'diverged': diverged.tolist()}
  _plot(report, results, lrs, label)
  return report.write(numbers)


def _plot(report, results, lrs, label):
  fig, axes = common.subplots(len(lrs), width=3.6)
  for i, (lr, ax) in enumerate(zip(lrs, axes)):
    for k, clip in enumerate(CLIPS):
      r = results[i * len(CLIPS) + k]
      losses = [h['train_loss'] for h in r.history]
      end = r.diverged_epoch - 1 if r.status == records.DIVERGED else len(losses)
      ax.plot(range(1, end + 1), losses[:end], marker='.', label=label(clip))
      if r.status == records.DIVERGED:
        ax.plot([r.diverged_epoch], [losses[end - 1] if end else 3.0], 'rx', ms=9)
    ax.set_yscale('log')
    ax.set_title(f'learning rate {lr:g}', fontsize=9)
    ax.set_xlabel('epoch')
    ax.set_ylabel('train loss (log scale)')
  axes[0].legend(fontsize=7)
  report.figure('clipping', fig, 'train loss per epoch; x = diverged (NaN/Inf)')


if __name__ == '__main__':
  common.main(run, 'gradient_clipping')
