"""Input scaling with and without BN: raw, min-max ([0, 1] and [-1, 1]) and standardized inputs
(dataset.scaling, fitted on the training split only), each trained by an MLP with batch norm and
without, over the same sweep of learning rates (one compiled program per scaling: norms and
learning rates are its members).

The claim (the course's "normalizing inputs" and Ioffe & Szegedy 2015): standardized inputs train
faster than raw ones, and batch norm's first layer re-centres and re-scales whatever it is given,
so a network with BN should care far less about the input scaling. Measured: best validation
accuracy per (scaling, norm) cell, its spread across learning rates, and how much the scaling moves
each norm's accuracy (range across scalings, at the best learning rate and at each one).

    python experiments/input_scaling.py [--workdir=runs/exp_input_scaling] [--small]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

from experiments import common  # pylint: disable=g-import-not-at-top

SCALINGS = ('none', 'minmax', 'minmax_symmetric', 'standardize')
NORMS = ('batch', 'none')


def setup(small):
  """(widths, learning rates, epochs): plain SGD, where the input scale reaches the updates."""
  if small:
    return (32, 32), (0.01, 0.1, 1.0), 3
  return (128, 128, 128), (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0), 20


def measure(data_dir, small, scalings):
  """{scaling: [norms, lrs] final validation accuracy (0 where a trial diverged)}. Each
  scaling's runs are independent of the others' (same seed, same settings)."""
  widths, lrs, epochs = setup(small)
  found = {}
  for scaling in scalings:
    base = common.config(data_dir, **{
        'dataset.scaling': scaling, 'model.widths': widths, 'optimizer.name': 'sgd',
        'train.epochs': epochs, 'train.batch_size': 64})
    data, num_classes = common.load(base)
    settings = [{'model.norm': norm, 'optimizer.learning_rate': lr}
                for norm in NORMS for lr in lrs]
    results = common.sweep(base, settings, data, num_classes)
    found[scaling] = common.metric(results).reshape(len(NORMS), len(lrs))
  return found


def summarize(found):
  """The numbers: per cell best and spread over learning rates; per norm the scalings' effect."""
  cells, per_norm = {}, {}
  for k, norm in enumerate(NORMS):
    accs = np.array([found[s][k] for s in found])  # [scalings, lrs]
    for scaling, acc in zip(found, accs):
      cells[f'{scaling}/{norm}'] = {'best': float(acc.max()),
                                    'spread_over_lrs': float(np.ptp(acc)),
                                    'by_lr': acc.tolist()}
    per_norm[norm] = {
        # How far the scaling moves the best (tuned) accuracy, and the accuracy at a fixed lr.
        'range_of_best_across_scalings': float(np.ptp(accs.max(axis=1))),
        'mean_range_across_scalings_per_lr': float(np.ptp(accs, axis=0).mean()),
        'worst_scaling_best': float(accs.max(axis=1).min())}
  return {'cells': cells, 'per_norm': per_norm}


def run(workdir, small=False, data_dir='', scalings=SCALINGS):
  """`scalings`: a subset for CI (tests/test_experiments.py: raw vs standardized)."""
  report = common.Report(workdir, 'Input scaling, with and without batch norm')
  widths, lrs, epochs = setup(small)
  found = measure(data_dir, small, scalings)
  numbers = dict(summarize(found), learning_rates=list(lrs))
  report.add(f'digits, MLP {widths} ReLU, plain SGD, batch 64, {epochs} epochs, learning rates '
             f'{list(lrs)}; the scaling is fitted on the training split only. Validation '
             'accuracy (0 = diverged).', '')
  report.table(['scaling', 'norm', *[f'lr {lr:g}' for lr in lrs], 'best', 'spread over lrs'],
               [[s, n, *c['by_lr'], c['best'], c['spread_over_lrs']]
                for s in scalings for n in NORMS for c in [numbers['cells'][f'{s}/{n}']]])
  report.table(['norm', 'range of best across scalings', 'mean range across scalings per lr',
                'worst scaling\'s best'],
               [[n, *numbers['per_norm'][n].values()] for n in NORMS])
  fig, axes = common.subplots(len(NORMS))
  for ax, (k, norm) in zip(axes, enumerate(NORMS)):
    for scaling in scalings:
      ax.plot(lrs, found[scaling][k], 'o-', label=scaling)
    ax.set_xscale('log')
    ax.set_xlabel('learning rate (SGD)')
    ax.set_ylabel('validation accuracy')
    ax.set_title('with BN' if norm == 'batch' else 'without BN', fontsize=9)
    ax.legend(fontsize=7)
  report.figure('input_scaling', fig, 'validation accuracy vs learning rate, per input scaling')
  report.add('Claim: BN makes the network far less sensitive to the input scaling; compare the '
             'ranges across scalings of the two norms above.', '')
  return report.write(numbers)


if __name__ == '__main__':
  common.main(run, 'input_scaling')
