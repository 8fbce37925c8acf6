"""BN at test time: running averages vs batch statistics vs recomputed ("precise") statistics.

One program trains an MLP with batch norm at several BN momenta (a dynamic hyperparameter: one
member per momentum). Each trained member is then evaluated on the test set three ways:
  running  - the running averages kept during training (Flax's default, `model.bn_eval=running`);
  batch    - each test batch normalized by its own statistics, for several evaluation batch sizes
             (`bn_eval=batch`, which ties the prediction of an example to its batch-mates);
  precise  - every BN layer's statistics recomputed over the training set with the weights frozen
             (`bn_eval=precise`, member.precise_batch_stats).
With a high momentum and a short training run the running averages still remember the early
weights; precise statistics do not. Small evaluation batches give noisy statistics.

    python experiments/bn_test_time.py [--workdir=runs/exp_bn_test_time] [--small]
"""

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from bnlab import member  # pylint: disable=g-import-not-at-top
from bnlab import population as population_lib  # pylint: disable=g-import-not-at-top
from bnlab import space  # pylint: disable=g-import-not-at-top
from experiments import common  # pylint: disable=g-import-not-at-top


def train(base, momenta, data, num_classes):
  settings = [{'model.bn_momentum': m} for m in momenta]
  configs = [space.with_overrides(base, s) for s in settings]
  population = population_lib.Population.create(configs, settings, np.arange(len(momenta)), data,
                                                num_classes, base.seed)
  for _ in range(base.train.epochs):
    population.run_epoch(data)
  return population


def accuracies(population, base, data, eval_batches):
  """Test accuracy of every member: running, precise, and batch statistics per eval batch size."""
  spec = population.spec
  state, x, y = population.state, data['x_test'], data['y_test']
  evaluate = lambda sp, **kw: jax.jit(jax.vmap(
      functools.partial(member.evaluate, sp, **kw), in_axes=(0, None, None)))
  out = {'running': evaluate(spec)(state, x, y)['accuracy']}
  precise = jax.jit(jax.vmap(functools.partial(member.precise_batch_stats, spec),
                             in_axes=(0, None)))(state, data['x_train'])
  out['precise'] = evaluate(spec)(state.replace(batch_stats=precise), x, y)['accuracy']
  for size in eval_batches:
    # evaluate() takes its batch size from train.batch_size: a spec of a copy of the static
    # config says it (its optimizer's schedule goes unused: evaluation takes no step).
    static_b = member.static_config(space.with_overrides(base, {'train.batch_size': size}))
    spec_b = member.make_spec(static_b, spec.num_classes, spec.num_train)
    out[f'batch_{size}'] = evaluate(spec_b, batch_statistics=True)(state, x, y)['accuracy']
  return {k: np.asarray(v) for k, v in out.items()}


def run(workdir, small=False, data_dir=''):
  report = common.Report(workdir, 'Batch norm at test time: running vs batch vs precise')
  if small:
    dataset, widths, epochs, momenta, eval_batches = 'digits', (16,), 4, (0.9, 0.999), (2, 64)
  else:
    dataset, widths, epochs = 'fashion_mnist', (256, 256), 2
    momenta, eval_batches = (0.5, 0.9, 0.99, 0.999, 0.9999), (2, 4, 8, 32, 128, 512)
  # Adam at 1e-2 grows the weights quickly, so the layer statistics move away from those at init.
  base = common.config(data_dir, dataset, **{'model.widths': widths, 'train.epochs': epochs,
                                             'optimizer.learning_rate': 1e-2})
  data, num_classes = common.load(base)
  population = train(base, momenta, data, num_classes)
  acc = accuracies(population, base, data, eval_batches)
  steps = epochs * (data['x_train'].shape[0] // base.train.batch_size)
  report.add(f'MLP {widths} with batch norm, Adam 1e-2, batch {base.train.batch_size}, '
             f'{epochs} epochs ({steps} steps) on {dataset}; test accuracy.', '')
  report.table(['BN momentum', 'running', 'precise',
                *[f'batch stats, eval batch {b}' for b in eval_batches]],
               [[m, *[acc[k][i] for k in acc]] for i, m in enumerate(momenta)])
  numbers = {'momenta': list(momenta), 'steps': steps, **{k: v.tolist() for k, v in acc.items()}}
  _plot(report, momenta, eval_batches, acc)
  return report.write(numbers)


def _plot(report, momenta, eval_batches, acc):
  fig, (ax1, ax2) = common.subplots(2)
  one_minus = 1 - np.array(momenta)
  for key in ('running', 'precise', f'batch_{eval_batches[-1]}'):
    ax1.plot(one_minus, acc[key], marker='o', label=key.replace('_', ' stats, eval batch '))
  ax1.set_xscale('log')
  ax1.set_xlabel('1 - BN momentum (log scale)')
  ax1.set_ylabel('test accuracy')
  ax1.legend(fontsize=8)
  for i, m in enumerate(momenta):
    ax2.plot(eval_batches, [acc[f'batch_{b}'][i] for b in eval_batches], marker='o',
             color=f'C{i}', label=f'batch stats, momentum {m}')
  ax2.axhline(np.max(acc['precise']), color='k', ls='--', label='precise (best momentum)')
  ax2.set_xscale('log', base=2)
  ax2.set_xlabel('evaluation batch size (log scale)')
  ax2.set_ylabel('test accuracy')
  ax2.legend(fontsize=7)
  report.figure('bn_test_time', fig, 'test accuracy vs momentum; vs evaluation batch size')


if __name__ == '__main__':
  common.main(run, 'bn_test_time')
