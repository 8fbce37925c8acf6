"""Batch size and normalization (Wu & He 2018, Group Normalization): BN vs GN vs LN vs IN at
batch sizes 32, 16, 8, 4, 2, the learning rate scaled linearly with the batch size.

The paper (ResNet-50, ImageNet): BN's error climbs from 23.6% at 32 images per GPU to 34.7% at 2,
GN's stays at ~24.1%. Here a small CNN on 8x8 digits: each (norm, batch size) is one bucket
(batch size and norm are static), the two base learning rates of a bucket are its members; the
one with the better validation accuracy reports its test error. experiments/wu_he_cnn.py runs
the same measurement with a CNN on Fashion-MNIST.

    python experiments/batch_size_norms.py [--workdir=runs/exp_batch_size_norms] [--small]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

from experiments import common  # pylint: disable=g-import-not-at-top

LABELS = {'batch': 'BN', 'group': 'GN', 'layer': 'LN', 'instance': 'IN'}
PAPER = {'batch': (23.6, 23.7, 24.8, 27.3, 34.7), 'group': (24.1, 24.2, 24.0, 24.2, 24.1)}
PAPER_BATCHES = (32, 16, 8, 4, 2)
BASE_LRS = (0.02, 0.1)  # Momentum SGD at batch 32; scaled by batch / 32 (Goyal et al.).


def measure(base, data, num_classes, norms, batches, seed=0):
  """Trains every (norm, batch size, base learning rate) of `base`; returns the numbers: test
  error (%) per norm and batch size of the base learning rate with the better validation
  accuracy, and its spread (max - min) across batch sizes."""
  settings = [{'model.norm': n, 'train.batch_size': b, 'optimizer.learning_rate': lr * b / 32}
              for n in norms for b in batches for lr in BASE_LRS]
  results = common.sweep(base, settings, data, num_classes, seed=seed)
  val = common.metric(results).reshape(len(norms), len(batches), len(BASE_LRS))
  test = common.metric(results, 'test_accuracy').reshape(val.shape)
  pick = val.argmax(-1)[..., None]
  error = 100 * (1 - np.take_along_axis(test, pick, -1)[..., 0])  # [norms, batches], percent.
  return {'batches': list(batches), 'test_error': {n: error[i].tolist()
                                                   for i, n in enumerate(norms)},
          'spread': {n: float(np.ptp(error[i])) for i, n in enumerate(norms)}}


def write(report, numbers, name):
  """The table of test errors (beside the paper's when every batch size of it ran) and the
  plot of error vs batch size, as plots/<name>.png."""
  batches, errors = numbers['batches'], numbers['test_error']
  rows = [[LABELS[n], *e, numbers['spread'][n]] for n, e in errors.items()]
  if tuple(batches) == PAPER_BATCHES:
    rows += [[f'paper {LABELS[n]} (ResNet-50, ImageNet)', *p, max(p) - min(p)]
             for n, p in PAPER.items()]
  report.table(['norm', *[f'batch {b}' for b in batches], 'max - min'], rows)
  fig, (ax,) = common.subplots()
  for n, e in errors.items():
    ax.plot(batches, e, marker='o', label=LABELS[n])
  ax.set_xscale('log', base=2)
  ax.set_xticks(batches, [str(b) for b in batches])
  ax.invert_xaxis()  # As in the paper: the batch shrinks to the right.
  ax.set_xlabel('batch size (log scale)')
  ax.set_ylabel('test error (%)')
  ax.legend()
  report.figure(name, fig, 'test error vs batch size per normalization')


def run(workdir, small=False, data_dir=''):
  report = common.Report(workdir, 'Batch size and normalization: BN vs GN vs LN vs IN')
  if small:  # An MLP (GN over groups of its features): compiles in a fraction of a CNN's time.
    model, norms, batches, epochs, groups = 'mlp', ('batch', 'group'), (32, 2), 4, 4
    widths = (32, 32)
  else:
    model, norms, batches, epochs, groups = 'cnn', tuple(LABELS), PAPER_BATCHES, 8, 8
    widths = (32, 64)
  base = common.config(data_dir, **{
      'model.name': model, 'model.widths': widths, 'model.groups': groups,
      'optimizer.name': 'momentum', 'train.epochs': epochs})
  data, num_classes = common.load(base)
  numbers = measure(base, data, num_classes, norms, batches)
  shape = 'CNN (3x3 conv -> norm -> ReLU -> 2x2 max pool)' if model == 'cnn' else 'MLP'
  report.add(f'{shape} widths {widths}, GN with {groups} groups, '
             f'momentum SGD, base learning rates {BASE_LRS} x batch/32, {epochs} epochs on '
             'digits. Test error (%) of the better base learning rate (by validation).', '')
  write(report, numbers, 'batch_size_norms')
  return report.write(numbers)


if __name__ == '__main__':
  common.main(run, 'batch_size_norms')
