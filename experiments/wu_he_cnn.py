"""Wu & He 2018 with a CNN on Fashion-MNIST: BN vs GN vs LN vs IN at batch sizes 32 ... 2.

experiments/batch_size_norms.py showed BN's collapse at batch 2 only with an MLP: its digits
CNN's BN normalized over 2 x 8 x 8 positions even at batch 2, and digits is too easy. Here the
same measurement (one bucket per norm and batch size, two base learning rates x batch/32 as the
members, test error of the better one by validation) runs a CNN on 28x28 Fashion-MNIST, whose
last conv sees 7x7 positions, as ResNet-50's last stage does on ImageNet.

Cut to fit 2 CPU cores: a 3-block CNN of widths (16, 32, 64) instead of ResNet-50; 4,000
training examples of the 48,000 and 5,000 each of validation and test, 2 epochs (the paper: 100
on ImageNet), so that batch 2 is 4,000 steps; batch sizes 32, 8 and 2 of the paper's 32 ... 2.

    python experiments/wu_he_cnn.py [--workdir=runs/exp_wu_he_cnn] [--small]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import batch_size_norms  # pylint: disable=g-import-not-at-top
from experiments import common  # pylint: disable=g-import-not-at-top

# Full: the reported run. Small: CI's, on digits (building Fashion-MNIST's TFDS files in a fresh
# data dir alone takes longer than CI's budget), BN and GN at the two ends only.
FULL = {'dataset': 'fashion_mnist', 'widths': (16, 32, 64), 'epochs': 2, 'groups': 8,
        'norms': tuple(batch_size_norms.LABELS), 'batches': (32, 8, 2), 'sizes': (4000, 5000)}
SMALL = {'dataset': 'digits', 'widths': (8, 16), 'epochs': 2, 'groups': 4,
         'norms': ('batch', 'group'), 'batches': (32, 2), 'sizes': (512, 360)}


def subset(data, num_train, num_eval):
  """The first num_train training examples, num_eval of validation and of test."""
  keep = {'x_train': num_train, 'y_train': num_train, 'x_val': num_eval, 'y_val': num_eval,
          'x_test': num_eval, 'y_test': num_eval}
  return {k: v[:keep[k]] for k, v in data.items()}


def run(workdir, small=False, data_dir='', seed=0):
  sizes = SMALL if small else FULL
  report = common.Report(workdir, 'Batch size and normalization with a CNN (Wu & He 2018)')
  base = common.config(data_dir, sizes['dataset'], **{
      'model.name': 'cnn', 'model.widths': sizes['widths'], 'model.groups': sizes['groups'],
      'optimizer.name': 'momentum', 'train.epochs': sizes['epochs'], 'seed': seed})
  data, num_classes = common.load(base)
  data = subset(data, *sizes['sizes'])
  numbers = batch_size_norms.measure(base, data, num_classes, sizes['norms'],
                                     sizes['batches'], seed)  # Init and data order: the seed.
  report.add(f'CNN (3x3 conv -> norm -> ReLU -> 2x2 max pool) widths {sizes["widths"]}, GN with '
             f'{sizes["groups"]} groups, momentum SGD, base learning rates '
             f'{batch_size_norms.BASE_LRS} x batch/32, {sizes["epochs"]} epochs on '
             f'{sizes["sizes"][0]} {sizes["dataset"]} training examples (seed {seed}); test '
             f'error (%) on {sizes["sizes"][1]} test examples, of the better base learning rate '
             'by validation.', '')
  batch_size_norms.write(report, numbers, 'wu_he_cnn')
  return report.write(dict(numbers, seed=seed))


if __name__ == '__main__':
  common.main(run, 'wu_he_cnn')
