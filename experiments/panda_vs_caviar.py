"""Panda vs caviar: the same compute spent babysitting one model at a time vs one caviar sweep.

Panda: one model trained at a time, watched every epoch by a simulated person who divides the
learning rate by 3 whenever the validation loss gets worse than its best so far, and who picks
each next run's starting learning rate by hill climbing (x3 in the direction that last helped,
turn around and take smaller steps when it stops helping). Caviar: as many random settings as
panda had runs (learning rate log-uniform), trained side by side in one compiled program.
Both spend runs x epochs member-epochs; the measured numbers are the best validation accuracy
(and its test accuracy) and the wall time.

    python experiments/panda_vs_caviar.py [--workdir=runs/exp_panda_vs_caviar] [--small]
"""

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

from bnlab import population as population_lib  # pylint: disable=g-import-not-at-top
from bnlab import programs  # pylint: disable=g-import-not-at-top
from bnlab import records  # pylint: disable=g-import-not-at-top
from bnlab import space  # pylint: disable=g-import-not-at-top
from experiments import common  # pylint: disable=g-import-not-at-top

FIELD = 'optimizer.learning_rate'
START_LR = 1e-3  # Adam's textbook default: where a person starts.


def set_learning_rate(population, lr):
  """Edits the (injected) learning rate of every member of a population between epochs."""
  opt_state = population.state.opt_state
  hparams = dict(opt_state.hyperparams, learning_rate=np.full_like(
      np.asarray(opt_state.hyperparams['learning_rate']), lr))
  population.state = population.state.replace(opt_state=opt_state._replace(hyperparams=hparams))


def babysit(base, lr, data, num_classes):
  """One run watched epoch by epoch: lr / 3 when the val loss is worse than its best so far."""
  config = space.with_overrides(base, {FIELD: lr})
  # Two identical members: bnlab's minimum (see programs.MIN_MEMBERS); only member 0 counts.
  population = population_lib.Population.create(
      [config] * programs.MIN_MEMBERS, [{FIELD: lr}] * programs.MIN_MEMBERS,
      [0] * programs.MIN_MEMBERS, data, num_classes, base.seed)
  best_loss, curve = math.inf, []
  for _ in range(base.train.epochs):
    metrics = population.run_epoch(data)
    loss, acc = float(metrics['val_loss'][0]), float(metrics['val_accuracy'][0])
    curve.append(0.0 if metrics['diverged'][0] else acc)
    if not math.isfinite(loss) or loss > best_loss:
      lr /= 3
      set_learning_rate(population, lr)
    best_loss = min(best_loss, loss) if math.isfinite(loss) else best_loss
  test = float(population.evaluate_test(data)['accuracy'][0])
  return curve, test


def panda(base, runs, data, num_classes):
  """Hill climbing on the starting learning rate, one babysat run after another."""
  lr, factor, direction = START_LR, 3.0, 1
  best, log = -1.0, []
  for _ in range(runs):
    curve, test = babysit(base, lr, data, num_classes)
    log.append({'lr': lr, 'val_accuracy': curve[-1], 'test_accuracy': test, 'curve': curve})
    if curve[-1] > best:
      best = curve[-1]
    else:  # Worse: go back past the last good point, in the other direction, with smaller steps.
      direction, factor = -direction, math.sqrt(factor)
      lr = max(log, key=lambda r: r['val_accuracy'])['lr']
    lr *= factor ** direction
  return log


def run(workdir, small=False, data_dir=''):
  report = common.Report(workdir, 'Panda vs caviar: one babysat model at a time vs one sweep')
  widths, epochs, runs = ((16,), 2, 6) if small else ((128, 128), 10, 32)
  base = common.config(data_dir, **{'model.widths': widths, 'train.epochs': epochs})
  data, num_classes = common.load(base)
  babysit(base, START_LR, data, num_classes)  # Compile once, outside both timings.
  common.sweep(base, [{FIELD: START_LR}] * runs, data, num_classes)
  start = time.perf_counter()
  log = panda(base, runs, data, num_classes)
  panda_seconds = time.perf_counter() - start
  start = time.perf_counter()
  settings = space.random_trials({FIELD: space.parse('log_uniform(1e-4, 1.0)')}, 0, runs)
  results = common.sweep(base, settings, data, num_classes)
  caviar_seconds = time.perf_counter() - start
  best_panda = max(log, key=lambda r: r['val_accuracy'])
  best_caviar = max(results,
                    key=lambda r: r.value('val_accuracy') if r.status == records.OK else -1)
  numbers = {'budget_member_epochs': runs * epochs,
             'panda_best_val': best_panda['val_accuracy'], 'panda_best_test':
             best_panda['test_accuracy'], 'panda_best_lr': best_panda['lr'],
             'panda_seconds': panda_seconds, 'caviar_best_val': best_caviar.value('val_accuracy'),
             'caviar_best_test': best_caviar.value('test_accuracy'),
             'caviar_best_lr': best_caviar.setting[FIELD], 'caviar_seconds': caviar_seconds}
  report.add(f'MLP {widths} with batch norm, Adam, on digits. Budget: {runs} runs x {epochs} '
             f'epochs = {runs * epochs} member-epochs each (panda\'s runs carry bnlab\'s '
             'second, duplicate member, so its compute is doubled; its wall time is the one a '
             'person would wait). Compilation is excluded from both timings.', '')
  report.table(['', 'best val acc', 'its test acc', 'its starting lr', 'wall time (s)'], [
      ['panda (babysat, sequential)', numbers['panda_best_val'], numbers['panda_best_test'],
       f'{best_panda["lr"]:.3g}', panda_seconds],
      ['caviar (one sweep, one program)', numbers['caviar_best_val'],
       numbers['caviar_best_test'], f'{numbers["caviar_best_lr"]:.3g}', caviar_seconds]])
  _plot(report, log, results, epochs)
  return report.write(numbers)


def _plot(report, log, results, epochs):
  fig, (ax1, ax2) = common.subplots(2)
  spent = np.arange(1, len(log) * epochs + 1)
  panda_curve = np.maximum.accumulate(np.concatenate([r['curve'] for r in log]))
  ax1.plot(spent, panda_curve, label='panda: best so far')
  ax1.axhline(max(common.metric(results)), color='C1', ls='--', label='caviar: best (at end)')
  ax1.set_xlabel('member-epochs spent')
  ax1.set_ylabel('best validation accuracy')
  ax1.legend(fontsize=8)
  ax2.scatter([r['lr'] for r in log], [r['val_accuracy'] for r in log], label='panda runs')
  ax2.scatter([r.setting[FIELD] for r in results], common.metric(results), marker='x',
              label='caviar trials')
  ax2.set_xscale('log')
  ax2.set_xlabel('(starting) learning rate (log scale)')
  ax2.set_ylabel('final validation accuracy')
  ax2.legend(fontsize=8)
  report.figure('panda_vs_caviar', fig, 'best so far vs compute; accuracy vs learning rate')


if __name__ == '__main__':
  common.main(run, 'panda_vs_caviar')
