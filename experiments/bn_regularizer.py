"""BN as a regularizer: the generalization gap (train - test accuracy, and test - train loss) vs
batch size, for an MLP with batch norm, without it, and without it but with dropout (for
comparison).

Ioffe & Szegedy (2015) report that BN's batch-dependent noise regularizes (dropout could be
removed or reduced); the noise grows as the batch shrinks. BN and no-BN run through bnlab's
population loop; dropout needs a module and an rng bnlab's members do not have, so it is a small
Flax MLP trained by its own loop here, with the same optimizer chain and the same data order
(member.epoch_order).
Each setting trains one copy per seed (init and data order) side by side in one program.

    python experiments/bn_regularizer.py [--workdir=runs/exp_bn_regularizer] [--small]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn  # pylint: disable=g-import-not-at-top
import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import optax  # pylint: disable=g-import-not-at-top

from bnlab import member  # pylint: disable=g-import-not-at-top
from bnlab import models  # pylint: disable=g-import-not-at-top
from bnlab import optim  # pylint: disable=g-import-not-at-top
from bnlab import population as population_lib  # pylint: disable=g-import-not-at-top
from bnlab import programs  # pylint: disable=g-import-not-at-top
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


def evaluate(model, params, x, y):
  """Mean loss and accuracy over (x, y), dropout off."""
  logits = model.apply({'params': params}, x)
  return {'loss': optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(),
          'accuracy': (logits.argmax(-1) == y).mean()}


def train_dropout(config, data, num_classes, seeds):
  """Trains DropoutMLP with config's optimizer, batch size and epochs, one copy per seed (its
  init, dropout masks and data order), vmapped in one program; (train metrics, test metrics),
  each {'loss', 'accuracy'} of [S] arrays."""
  x, y = data['x_train'], data['y_train']
  x_seen, y_seen = train_slice(data)
  model = DropoutMLP(tuple(config.model.widths), num_classes, DROPOUT)
  tx = optim.make_optimizer(config.optimizer, member.total_steps(config, x.shape[0]))

  def init(seed):
    return model.init(jax.random.split(jax.random.key(seed))[0], x[:1])['params']

  def fit(params, seed):
    drop_key = jax.random.split(jax.random.key(seed))[1]

    def step(carry, idx):
      params, opt_state, k = carry
      loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(model.apply(
          {'params': p}, x[idx], train=True, rngs={'dropout': jax.random.fold_in(drop_key, k)}),
          y[idx]).mean()
      updates, opt_state = tx.update(jax.grad(loss)(params), opt_state, params)
      return (optax.apply_updates(params, updates), opt_state, k + 1), None

    def epoch(carry, e):
      order = member.epoch_order(seed, e, x.shape[0], config.train.batch_size)
      return jax.lax.scan(step, carry, order)[0], None

    params = jax.lax.scan(epoch, (params, tx.init(params), 0),
                          np.arange(config.train.epochs))[0][0]
    return (evaluate(model, params, x_seen, y_seen),
            evaluate(model, params, data['x_test'], data['y_test']))

  seeds = np.asarray(seeds, np.int32)
  # As in programs.compile_programs: LLVM's optimizer takes long on init for no runtime gain.
  init = jax.jit(jax.vmap(init)).lower(seeds).compile(programs.INIT_COMPILER_OPTIONS)
  return jax.device_get(jax.jit(jax.vmap(fit))(init(seeds), seeds))


def train_population(config, data, num_classes, seeds):
  """Trains one config as a bnlab population, one member per seed (its init and data order) in
  one program; (train metrics on a test-sized slice, test metrics), each {'loss', 'accuracy'}
  [S]."""
  members = np.resize(seeds, programs.padded_size(len(seeds)))  # Padded with repeats.
  own = None if len(set(seeds)) == 1 else members  # One seed: the members share config.seed.
  population = population_lib.Population.create(
      [config] * len(members), [{}] * len(members), [0] * len(members), data, num_classes,
      int(members[0]), member_seeds=own)
  for _ in range(config.train.epochs):
    population.run_epoch(data)
  x_seen, y_seen = train_slice(data)
  train = population.evaluate_test(dict(data, x_test=x_seen, y_test=y_seen))
  test = population.evaluate_test(data)
  first = lambda metrics: {k: np.asarray(v[:len(seeds)]) for k, v in metrics.items()}
  return first(train), first(test)


def train_slice(data):
  """Training examples as many as the test set (the first ones; repeated in turn when the
  training set is smaller), so that train accuracy runs through the compiled test program."""
  n = data['x_test'].shape[0]
  return tuple(jnp.resize(data[k], (n,) + data[k].shape[1:]) for k in ('x_train', 'y_train'))


def subset(data, num_train, num_eval):
  """A smaller training set (so the models overfit) and test set (so it is cheap to evaluate)."""
  keep = {'x_train': num_train, 'y_train': num_train, 'x_val': num_eval, 'y_val': num_eval,
          'x_test': num_eval, 'y_test': num_eval}
  return {k: v[:keep[k]] for k, v in data.items()}


DROPOUT_LABEL = f'no BN, dropout {DROPOUT}'
VARIANTS = {'BN': ('batch', train_population), 'no BN': ('none', train_population),
            DROPOUT_LABEL: ('none', train_dropout)}
# Full: the reported run. Small: CI's seconds-long run. Digits barely overfits, so a small
# training set, five seeds (members of one program) and the loss gap besides the accuracy gap
# (one digits test example is 0.28 points); compiling dominates, so dropout runs at one batch.
FULL = {'dataset': 'fashion_mnist', 'widths': (256, 256), 'epochs': 20,
        'batches': (8, 32, 128, 512), 'sizes': (6000, 5000), 'seeds': (0,), 'skip': ()}
SMALL = {'dataset': 'digits', 'widths': (64, 64), 'epochs': 30, 'batches': (8, 64),
         'sizes': (360, 360), 'seeds': (0, 1, 2, 3, 4), 'skip': ((DROPOUT_LABEL, 8),)}
METRICS = ('gap', 'loss_gap', 'test_accuracy')


def measure(base, data, num_classes, setup):
  """Every variant at every batch size but setup['skip']: {'gap' (train - test accuracy,
  points), 'loss_gap' (test - train cross-entropy), 'test_accuracy'}, each {label: [batch] of
  [seed] arrays, None where skipped}."""
  numbers = {name: {label: [] for label in VARIANTS} for name in METRICS}
  for label, (norm, trainer) in VARIANTS.items():
    for b in setup['batches']:
      if (label, b) in setup['skip']:
        for name in METRICS:
          numbers[name][label].append(None)
        continue
      config = space.with_overrides(base, {'model.norm': norm, 'train.batch_size': b})
      train, test = trainer(config, data, num_classes, setup['seeds'])
      numbers['gap'][label].append(100 * (train['accuracy'] - test['accuracy']))
      numbers['loss_gap'][label].append(test['loss'] - train['loss'])
      numbers['test_accuracy'][label].append(test['accuracy'])
  return numbers


def _over_seeds(per_seed, reduce):
  return {name: {label: [None if v is None else reduce(v) for v in rows]
                 for label, rows in table.items()} for name, table in per_seed.items()}


def _cell(value, spec, scale=1.0):
  return '—' if value is None else format(scale * value, spec)


def _plot(report, mean, batches):
  fig, axes = common.subplots(3)
  for ax, (name, what) in zip(axes, (('gap', 'accuracy gap (train - test, points)'),
                                     ('loss_gap', 'loss gap (test - train)'),
                                     ('test_accuracy', 'test accuracy'))):
    for label, values in mean[name].items():
      ax.plot(batches, [np.nan if v is None else v for v in values], marker='o', label=label)
    ax.set_xscale('log', base=2)
    ax.set_xlabel('batch size (log scale)')
    ax.set_ylabel(what)
    ax.legend(fontsize=8)
  report.figure('bn_regularizer', fig, 'generalization gaps and test accuracy vs batch size')


def run(workdir, small=False, data_dir=''):
  report = common.Report(workdir, 'Batch norm as a regularizer: generalization gap vs batch size')
  setup = SMALL if small else FULL
  dataset, widths, epochs, batches, sizes, seeds = (setup[k] for k in (
      'dataset', 'widths', 'epochs', 'batches', 'sizes', 'seeds'))
  base = common.config(data_dir, dataset, **{'model.widths': widths, 'train.epochs': epochs})
  full, num_classes = common.load(base)
  per_seed = measure(base, subset(full, *sizes), num_classes, setup)
  mean = _over_seeds(per_seed, lambda v: float(np.mean(v)))
  report.add(f'MLP {widths} (ReLU), Adam 1e-3, {epochs} epochs on {sizes[0]} training examples '
             f'of {dataset}; train metrics on {sizes[1]} of them (repeated in turn if fewer), '
             f'test metrics on {sizes[1]} test examples; mean over seeds {list(seeds)} (init and '
             'data order). Cells: the gap in points (train - test accuracy) and test accuracy; '
             'then the gap in loss (test - train cross-entropy).', '')
  columns = ['model', *[f'batch {b}' for b in batches]]
  report.table(columns, [[label, *[_cell(g, '.1f') + ('' if a is None else f' ({100 * a:.1f}%)')
                                   for g, a in zip(gaps, mean['test_accuracy'][label])]]
                         for label, gaps in mean['gap'].items()])
  report.table(columns, [[label, *[_cell(g, '.3f') for g in gaps]]
                         for label, gaps in mean['loss_gap'].items()])
  _plot(report, mean, batches)
  return report.write(dict(mean, batches=list(batches), seeds=list(seeds),
                           per_seed=_over_seeds(per_seed, lambda v: np.asarray(v).tolist())))


if __name__ == '__main__':
  common.main(run, 'bn_regularizer')
