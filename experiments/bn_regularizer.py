"""BN as a regularizer: the generalization gap (train accuracy - test accuracy) vs batch size,
for an MLP with batch norm, without it, and without it but with dropout (for comparison).

Ioffe & Szegedy (2015) report that BN's batch-dependent noise regularizes (dropout could be
removed or reduced); the noise grows as the batch shrinks. BN and no-BN run through the engine;
dropout needs a module and an rng the engine does not have, so it is a small Flax MLP trained by
its own loop here, with the same optimizer chain and the same data order (engine.epoch_order).

    python experiments/bn_regularizer.py [--workdir=runs/exp_bn_regularizer] [--small]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn  # pylint: disable=g-import-not-at-top
import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import optax  # pylint: disable=g-import-not-at-top

from bnlab import engine  # pylint: disable=g-import-not-at-top
from bnlab import models  # pylint: disable=g-import-not-at-top
from bnlab import optim  # pylint: disable=g-import-not-at-top
from bnlab import space  # pylint: disable=g-import-not-at-top
from experiments import common  # pylint: disable=g-import-not-at-top

DROPOUT = 0.5


class DropoutMLP(nn.Module):
  """Dense -> ReLU -> Dropout per hidden layer; the MLP of bnlab.models with norm='none'."""
  widths: tuple
  num_classes: int
  rate: float

  @nn.compact
  def __call__(self, x, train=False):
    x = x.reshape((x.shape[0], -1))
    for width in self.widths:
      x = nn.relu(nn.Dense(width, kernel_init=models.kernel_init(1.0))(x))
      x = nn.Dropout(self.rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, kernel_init=models.kernel_init(1.0))(x)


def accuracy(model, params, x, y):
  return (model.apply({'params': params}, x).argmax(-1) == y).mean()


def train_dropout(config, data, num_classes):
  """Trains DropoutMLP with config's optimizer, batch size and epochs; (train acc, test acc)."""
  x, y = data['x_train'], data['y_train']
  model = DropoutMLP(tuple(config.model.widths), num_classes, DROPOUT)
  tx = optim.make_optimizer(config.optimizer, engine.total_steps(config, x.shape[0]))
  init_key, drop_key = jax.random.split(jax.random.key(config.seed))

  @jax.jit
  def fit(params):
    def step(carry, idx):
      params, opt_state, k = carry
      loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(model.apply(
          {'params': p}, x[idx], train=True, rngs={'dropout': jax.random.fold_in(drop_key, k)}),
          y[idx]).mean()
      updates, opt_state = tx.update(jax.grad(loss)(params), opt_state, params)
      return (optax.apply_updates(params, updates), opt_state, k + 1), None

    def epoch(carry, e):
      order = engine.epoch_order(config.seed, e, x.shape[0], config.train.batch_size)
      return jax.lax.scan(step, carry, order)[0], None

    carry = (params, tx.init(params), 0)
    params = jax.lax.scan(epoch, carry, np.arange(config.train.epochs))[0][0]
    return params

  params = fit(model.init(init_key, x[:1])['params'])
  n = data['x_test'].shape[0]
  return (float(accuracy(model, params, x[:n], y[:n])),
          float(accuracy(model, params, data['x_test'], data['y_test'])))


def train_engine(config, data, num_classes):
  """Trains one config through the engine; (train acc on a test-sized slice, test acc)."""
  population = engine.Population.create([config] * engine.MIN_MEMBERS, [0, 0], data,
                                        num_classes, config.seed)
  for _ in range(config.train.epochs):
    population.run_epoch(data)
  n = data['x_test'].shape[0]
  train = population.evaluate_test(dict(data, x_test=data['x_train'][:n],
                                        y_test=data['y_train'][:n]))
  return float(train['accuracy'][0]), float(population.evaluate_test(data)['accuracy'][0])


def subset(data, num_train, num_eval):
  """A smaller training set (so the models overfit) and test set (so it is cheap to evaluate)."""
  keep = {'x_train': num_train, 'y_train': num_train, 'x_val': num_eval, 'y_val': num_eval,
          'x_test': num_eval, 'y_test': num_eval}
  return {k: v[:keep[k]] for k, v in data.items()}


def run(workdir, small=False, data_dir=''):
  report = common.Report(workdir, 'Batch norm as a regularizer: generalization gap vs batch size')
  if small:
    dataset, widths, epochs, batches, sizes = 'digits', (32,), 4, (8, 128), (1150, 360)
  else:
    dataset, widths, epochs, batches, sizes = 'fashion_mnist', (256, 256), 20, (
        8, 32, 128, 512), (6000, 5000)
  base = common.config(data_dir, dataset, **{'model.widths': widths, 'train.epochs': epochs})
  full, num_classes = common.load(base)
  data = subset(full, *sizes)
  variants = {'BN': ('batch', train_engine), 'no BN': ('none', train_engine),
              f'no BN, dropout {DROPOUT}': ('none', train_dropout)}
  acc = {}
  for label, (norm, trainer) in variants.items():
    for b in batches:
      config = space.with_overrides(base, {'model.norm': norm, 'train.batch_size': b})
      acc[label, b] = trainer(config, data, num_classes)
  gap = {k: 100 * (tr - te) for k, (tr, te) in acc.items()}
  report.add(f'MLP {widths} (ReLU), Adam 1e-3, {epochs} epochs on {sizes[0]} training examples '
             f'of {dataset}; train accuracy on {sizes[1]} of them, test accuracy on {sizes[1]} '
             'test examples. Cells: gap in points (train - test accuracy), test accuracy.', '')
  report.table(['model', *[f'batch {b}' for b in batches]],
               [[label, *[f'{gap[label, b]:.1f} ({100 * acc[label, b][1]:.1f}%)'
                          for b in batches]] for label in variants])
  numbers = {'batches': list(batches), 'gap': {lab: [gap[lab, b] for b in batches]
                                               for lab in variants},
             'test_accuracy': {lab: [acc[lab, b][1] for b in batches] for lab in variants}}
  fig, (ax1, ax2) = common.subplots(2)
  for label in variants:
    ax1.plot(batches, numbers['gap'][label], marker='o', label=label)
    ax2.plot(batches, [100 * a for a in numbers['test_accuracy'][label]], marker='o', label=label)
  for ax, what in ((ax1, 'generalization gap (train - test, points)'),
                   (ax2, 'test accuracy (%)')):
    ax.set_xscale('log', base=2)
    ax.set_xlabel('batch size (log scale)')
    ax.set_ylabel(what)
    ax.legend(fontsize=8)
  report.figure('bn_regularizer', fig, 'generalization gap and test accuracy vs batch size')
  return report.write(numbers)


if __name__ == '__main__':
  common.main(run, 'bn_regularizer')
