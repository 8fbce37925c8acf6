"""BN vs no BN in the setup of Ioffe & Szegedy (2015), Section 4.1: an MLP of 3 hidden layers of
100 sigmoid units, batch 60, plain SGD, with and without batch norm, each over the same sweep of
learning rates (one compiled program per norm, the learning rates as members).

Measured: validation accuracy vs steps, the steps each needs to reach a target accuracy, and the
15th/50th/85th percentiles of one last-hidden-layer sigmoid input over training (the paper's
Figure 1: without BN they drift, with BN they stay put).

    python experiments/bn_vs_no_bn.py [--workdir=runs/exp_bn_vs_no_bn] [--small]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from bnlab import population as population_lib  # pylint: disable=g-import-not-at-top
from bnlab import space  # pylint: disable=g-import-not-at-top
from experiments import common  # pylint: disable=g-import-not-at-top

NORMS = ('batch', 'none')
PROBE = 1000  # Validation examples whose sigmoid inputs are tracked.


def base_config(data_dir, dataset, widths):
  return common.config(data_dir, dataset, **{
      'model.widths': widths, 'model.activation': 'sigmoid', 'optimizer.name': 'sgd',
      'train.batch_size': 60, 'train.epochs': 1})


def chunk(data, i, size):
  """The i-th block of `size` training examples (wrapping): one call of run_epoch = one block."""
  n = data['x_train'].shape[0]
  start = (i * size) % (n - size + 1) if size < n else 0
  return dict(data, x_train=data['x_train'][start:start + size],
              y_train=data['y_train'][start:start + size])


def sigmoid_inputs(population, x, unit=0):
  """Percentiles 15/50/85 of one last-hidden-layer sigmoid input, per member: [N, 3]."""
  static = population.spec.static
  state = population.state

  def one(params, batch_stats, hparams):
    model = population.spec.make_model(hparams)
    _, inter = model.apply({'params': params, 'batch_stats': batch_stats}, x, train=False,
                           capture_intermediates=True)
    last = f'Norm_{len(static.model.widths) - 1}'
    return inter['intermediates'][last]['__call__'][0][:, unit]

  values = jax.jit(jax.vmap(one))(state.params, state.batch_stats, state.model_hparams)
  return np.percentile(np.asarray(values), [15, 50, 85], axis=1).T


def curves(base, lrs, data, num_classes, calls, block):
  """Per norm: steps [calls], val accuracy [calls, lrs], percentiles [calls, lrs, 3]."""
  out = {}
  probe = data['x_val'][:PROBE]
  for norm in NORMS:
    settings = [{'model.norm': norm, 'optimizer.learning_rate': lr} for lr in lrs]
    configs = [space.with_overrides(base, s) for s in settings]
    population = population_lib.Population.create(configs, settings, np.arange(len(lrs)),
                                                  chunk(data, 0, block), num_classes, seed=0)
    acc, pct = [], []
    for i in range(calls):
      metrics = population.run_epoch(chunk(data, i, block))
      acc.append(np.where(metrics['diverged'], 0.0, metrics['val_accuracy']))
      pct.append(sigmoid_inputs(population, probe))
    steps = (np.arange(calls) + 1) * (block // base.train.batch_size)
    out[norm] = (steps, np.array(acc), np.array(pct))
  return out


def steps_to(steps, acc, target):
  """First step at which any learning rate reaches `target` (None if none does)."""
  hit = np.nonzero(acc.max(axis=1) >= target)[0]
  return int(steps[hit[0]]) if hit.size else None


def run(workdir, small=False, data_dir=''):
  report = common.Report(workdir, 'Batch norm vs none: Ioffe & Szegedy (2015), MNIST setup')
  if small:
    setups = [('digits', (16, 16, 16), (0.3, 3.0), 12, 1200)]
  else:
    setups = [('fashion_mnist', (100, 100, 100), (0.03, 0.1, 0.3, 1.0, 3.0), 40, 6000),
              ('digits', (100, 100, 100), (0.03, 0.1, 0.3, 1.0, 3.0), 40, 1200)]
  numbers = {}
  for dataset, widths, lrs, calls, block in setups:
    base = base_config(data_dir, dataset, widths)
    data, num_classes = common.load(base)
    found = curves(base, lrs, data, num_classes, calls, block)
    numbers[dataset] = _summarize(report, dataset, widths, lrs, found)
  report.add('The paper (MNIST, 50,000 steps): BN reaches higher test accuracy faster, and its '
             'Figure 1 shows the sigmoid input distribution drifting without BN and stable with '
             'it. Accuracy here is on the validation split.', '')
  return report.write(numbers)


def _summarize(report, dataset, widths, lrs, found):
  steps = found['none'][0]
  final = {n: found[n][1][-1] for n in NORMS}
  target = 0.98 * max(final['none'].max(), 1e-9)  # 98% of what no-BN reaches at its best.
  numbers = {'target': float(target)}
  for norm in NORMS:
    numbers[f'steps_to_target_{norm}'] = steps_to(steps, found[norm][1], target)
    numbers[f'final_best_{norm}'] = float(final[norm].max())
    numbers[f'final_{norm}'] = final[norm].tolist()
  best_none = int(np.argmax(final['none']))
  pct = {n: found[n][2][:, best_none] for n in NORMS}
  numbers['median_drift'] = {n: float(np.ptp(pct[n][:, 1])) for n in NORMS}
  report.add(f'## {dataset}', '', f'MLP {widths} sigmoid, batch 60, SGD, learning rates '
             f'{list(lrs)}; {steps[-1]} steps. Target = 98% of no-BN\'s best final accuracy.', '')
  report.table(['', *[f'lr {lr:g}' for lr in lrs], 'steps to target'],
               [[f'final val acc, {n}', *final[n], numbers[f'steps_to_target_{n}']]
                for n in NORMS])
  fig, axes = common.subplots(3, width=4.3)
  for k, lr in enumerate(lrs):
    for norm, style in zip(NORMS, ('-', ':')):
      axes[0].plot(steps, found[norm][1][:, k], style, color=f'C{k}',
                   label=f'{"BN" if norm == "batch" else "no BN"}, lr {lr:g}')
  axes[0].set_xlabel('SGD steps')
  axes[0].set_ylabel('validation accuracy')
  axes[0].set_ylim(max(0.0, target - 0.3), 1.0)
  axes[0].legend(fontsize=6, ncol=2)
  for ax, norm in zip(axes[1:], NORMS):
    for q, label in enumerate(('15th', '50th', '85th')):
      ax.plot(steps, pct[norm][:, q], label=f'{label} percentile')
    ax.set_title(f'{"with" if norm == "batch" else "without"} BN, lr {lrs[best_none]:g}',
                 fontsize=9)
    ax.set_xlabel('SGD steps')
    ax.set_ylabel('input of one last-layer sigmoid')
    ax.legend(fontsize=7)
  report.figure(f'bn_vs_no_bn_{dataset}', fig, f'{dataset}: accuracy vs steps; Figure 1')
  return numbers


if __name__ == '__main__':
  common.main(run, 'bn_vs_no_bn')
