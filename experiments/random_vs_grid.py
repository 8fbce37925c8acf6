"""Random vs grid search (Bergstra & Bengio 2012) with one important and one unimportant knob.

An MLP without normalization trained briefly with Adam: the learning rate matters, Adam's
epsilon (1e-10..1e-6) hardly does. A 5x5 grid tries only 5
learning rates in 25 trials, 25 random trials try 25. The best-of-s curve is the expected best
validation accuracy of s trials, estimated from many random subsets of one large random sweep.
The paper: 8 random trials match ~100 grid trials (its Figure 5, on its image tasks).

    python experiments/random_vs_grid.py [--workdir=runs/exp_random_vs_grid] [--small]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

from bnlab import space  # pylint: disable=g-import-not-at-top
from experiments import common  # pylint: disable=g-import-not-at-top

IMPORTANT, UNIMPORTANT = 'optimizer.learning_rate', 'optimizer.eps'
SPECS = {IMPORTANT: space.parse('log_uniform(1e-4, 1.0)'),
         UNIMPORTANT: space.parse('log_uniform(1e-10, 1e-6)')}


def grid(points):
  """points x points settings, each axis evenly spaced on its (log) scale, ends included."""
  u = np.linspace(0, 1 - 1e-9, points)
  return [{IMPORTANT: SPECS[IMPORTANT].value(a), UNIMPORTANT: SPECS[UNIMPORTANT].value(b)}
          for a in u for b in u]


def best_of_s(values, sizes, draws, seed=0):
  """Mean, 10th and 90th percentile of max(values over a random subset of size s), per s."""
  rng = np.random.default_rng(seed)
  out = []
  for s in sizes:
    best = np.array([values[rng.choice(len(values), s, replace=False)].max()
                     for _ in range(draws)])
    out.append((best.mean(), *np.percentile(best, [10, 90])))
  return np.array(out)


def trials_to_match(curve, sizes, target):
  """The smallest s whose mean best-of-s reaches `target`, or None."""
  hits = [s for s, (mean, _, _) in zip(sizes, curve) if mean >= target]
  return hits[0] if hits else None


def run(workdir, small=False, data_dir=''):
  report = common.Report(workdir, 'Random vs grid search (Bergstra & Bengio 2012)')
  # No BN and few epochs: digits is otherwise solved by nearly every learning rate (0.9965 =
  # one validation error), and the best-of-s curve saturates at once.
  widths, epochs, num_random = ((16,), 2, 50) if small else ((32,), 3, 250)
  base = common.config(data_dir, **{'model.widths': widths, 'train.epochs': epochs,
                                    'model.norm': 'none'})
  data, num_classes = common.load(base)
  randoms = space.random_trials(SPECS, 0, num_random)
  # Chunks of 25 members everywhere: one compiled program serves all three sweeps.
  random_results = common.sweep(base, randoms, data, num_classes, max_parallel=25)
  grid25_results = common.sweep(base, grid(5), data, num_classes, max_parallel=25)
  grid100_results = common.sweep(base, grid(10), data, num_classes, max_parallel=25)
  grid25, grid100 = common.metric(grid25_results), common.metric(grid100_results)
  acc = common.metric(random_results)
  sizes = list(range(1, min(100, num_random) + 1))
  curve = best_of_s(acc, sizes, 300 if small else 2000)
  # Validation loss (negated, so higher is better) does not tie the way accuracy on 287
  # examples does.
  neg_loss = lambda results: -common.metric(results, 'val_loss', np.inf)
  loss_curve = best_of_s(neg_loss(random_results), sizes, 300 if small else 2000)
  numbers = {
      'distinct_lr_grid25': len({s[IMPORTANT] for s in grid(5)}),
      'distinct_lr_random25': len({s[IMPORTANT] for s in randoms[:25]}),
      'best_grid25': grid25.max(), 'best_random25': acc[:25].max(),
      'best_grid100': grid100.max(), 'best_random_all': acc.max(),
      'expected_best_random25': curve[24][0],
      'random_trials_to_match_grid25': trials_to_match(curve, sizes, grid25.max()),
      'random_trials_to_match_grid100': trials_to_match(curve, sizes, grid100.max()),
      'best_val_loss_grid25': -neg_loss(grid25_results).max(),
      'best_val_loss_grid100': -neg_loss(grid100_results).max(),
      'random_trials_to_match_grid25_loss': trials_to_match(
          loss_curve, sizes, neg_loss(grid25_results).max()),
      'random_trials_to_match_grid100_loss': trials_to_match(
          loss_curve, sizes, neg_loss(grid100_results).max())}
  report.add(f'MLP {widths}, Adam, {epochs} epochs on digits; the learning rate '
             'log-uniform in (1e-4, 1), Adam\'s eps log-uniform in (1e-10, 1e-6); no '
             'normalization. '
             f'{num_random} random trials; grids of 5x5 and 10x10.', '')
  report.table(['', 'grid 25', 'random 25', 'grid 100', f'random {num_random}'], [
      ['distinct learning rates', numbers['distinct_lr_grid25'],
       numbers['distinct_lr_random25'], 10, num_random],
      ['best val accuracy', grid25.max(), acc[:25].max(), grid100.max(), acc.max()]])
  report.add(f'Expected best of 25 random trials: {curve[24][0]:.4f}. Random trials needed '
             f'(mean best-of-s) to match the 25-point grid: '
             f'{numbers["random_trials_to_match_grid25"]}, the 100-point grid: '
             f'{numbers["random_trials_to_match_grid100"]} (paper: 8 random ≈ 100 grid). '
             'By the lowest validation loss instead: '
             f'{numbers["random_trials_to_match_grid25_loss"]} and '
             f'{numbers["random_trials_to_match_grid100_loss"]}.', '')
  _plots(report, randoms, acc, grid(5), grid25, sizes, curve, grid100.max())
  return report.write(numbers)


def _plots(report, randoms, acc, grid25_settings, grid25, sizes, curve, grid100_best):
  fig, (ax1, ax2) = common.subplots(2)
  lr = lambda settings: [s[IMPORTANT] for s in settings]
  ax1.scatter(lr(randoms[:25]), acc[:25], label='random 25', s=18)
  ax1.scatter(lr(grid25_settings), grid25, marker='x', label='grid 5x5 (5 distinct lrs)', s=30)
  ax1.set_xscale('log')
  ax1.set_xlabel('learning rate (important, log scale)')
  ax1.set_ylabel('validation accuracy')
  ax1.legend(fontsize=8)
  ax2.plot(sizes, curve[:, 0], label='random: mean best of s')
  ax2.fill_between(sizes, curve[:, 1], curve[:, 2], alpha=0.3, label='10th-90th percentile')
  ax2.axhline(grid25.max(), color='C1', ls='--', label='grid 25 best')
  ax2.axhline(grid100_best, color='C3', ls=':', label='grid 100 best')
  ax2.set_ylim(max(0.0, grid25.max() - 0.15), min(1.0, curve[-1, 2] + 0.02))
  ax2.set_xscale('log')
  ax2.set_xlabel('number of random trials s (log scale)')
  ax2.set_ylabel('best validation accuracy')
  ax2.legend(fontsize=8)
  report.figure('random_vs_grid', fig, 'validation accuracy vs learning rate; best-of-s curve')


if __name__ == '__main__':
  common.main(run, 'random_vs_grid')
