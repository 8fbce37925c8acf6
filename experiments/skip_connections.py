"""Skip connections: a plain deep CNN vs a ResNet (He et al. 2016) vs a DenseNet (Huang et al.
2017) of the same depth.

ResNet-20 (a 3x3 stem, three stages of three residual blocks of two 3x3 convs, a Dense head:
20 weight layers) against a plain CNN of 19 3x3 convs and the same head (20 weight layers, no
skips) and a DenseNet of three dense blocks of six 3x3 convs each, the same stem and head (20
weight layers, growth rate 12). Weight layers are counted alike: the 3x3 convs and the head; the
1x1 convs at the stage boundaries (the ResNet's two projections, the DenseNet's two transitions)
are not counted, nor plotted. Each with batch norm and without any normalization; momentum SGD
at two learning rates per model (the members of one program). Measured: train loss per epoch
and the gradient norm of every layer's kernel at initialization, on one batch.

    python experiments/skip_connections.py [--workdir=runs/exp_skip_connections] [--small]
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import optax  # pylint: disable=g-import-not-at-top

from bnlab import models  # pylint: disable=g-import-not-at-top
from bnlab import records  # pylint: disable=g-import-not-at-top
from bnlab import space  # pylint: disable=g-import-not-at-top
from experiments import common  # pylint: disable=g-import-not-at-top

LRS = (0.01, 0.05)
COLORS = {'resnet': 'C0', 'plain': 'C3', 'densenet': 'C2'}
# Full: the reported run; small: CI's. 5 epochs (not 15 as before DenseNet joined): ~10 minutes.
FULL = {'widths': (16, 32, 64), 'depth': 3, 'growth_rate': 12, 'epochs': 5,
        'norms': ('batch', 'none')}
SMALL = {'widths': (8, 16), 'depth': 2, 'growth_rate': 4, 'epochs': 2, 'norms': ('none',)}


def shapes(small):
  """{name: model overrides} of equal depth: ResNet with `depth` blocks of two convs per stage,
  DenseNet with 2 * depth layers of one conv per stage, a plain CNN of as many convs."""
  sizes = SMALL if small else FULL
  widths, depth = sizes['widths'], sizes['depth']
  plain = sum(([w] * (2 * depth) for w in widths), [widths[0]])  # The stem, then the convs.
  return {'resnet': {'model.name': 'resnet', 'model.widths': widths, 'model.depth': depth},
          'plain': {'model.name': 'cnn', 'model.widths': tuple(plain)},
          'densenet': {'model.name': 'densenet', 'model.widths': widths,
                       'model.depth': 2 * depth, 'model.growth_rate': sizes['growth_rate']}}


def _layer_key(path):
  """Natural order of a kernel's path: stem, blocks in order, the Dense head last."""
  names = [getattr(k, 'key', str(k)) for k in path]
  return (names[0].startswith('Dense_'),
          [int(n) if n.isdigit() else n for name in names for n in re.split(r'(\d+)', name)])


def _stage_boundary(path):
  """A 1x1 conv between stages, not counted as a weight layer: a residual block's projection
  (its third conv) or a DenseNet transition."""
  names = [getattr(k, 'key', '') for k in path]
  return names[0].startswith('Transition') or (len(names) == 3 and names[1] == 'Conv_2')


def kernel_grad_norms(config, data, num_classes, batch=64):
  """Gradient norm of every conv/dense kernel, input to output, at init on one training batch."""
  model = models.make_model(config.model, num_classes, {
      'bn_momentum': config.model.bn_momentum, 'bn_epsilon': config.model.bn_epsilon,
      'init_scale': config.model.init_scale})
  x, y = data['x_train'][:batch], data['y_train'][:batch]
  variables = model.init(jax.random.key(config.seed), x[:1], train=False)

  def loss(params):
    logits, _ = model.apply(dict(variables, params=params), x, train=True,
                            mutable=['batch_stats'])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  grads = jax.jit(jax.grad(loss))(variables['params'])  # One compile, not op by op.
  kernels = [(p, g) for p, g in jax.tree_util.tree_flatten_with_path(grads)[0]
             if getattr(p[-1], 'key', '') == 'kernel' and not _stage_boundary(p)]
  return [float(np.linalg.norm(g)) for _, g in sorted(kernels, key=lambda k: _layer_key(k[0]))]


def run(workdir, small=False, data_dir=''):
  report = common.Report(workdir, 'Skip connections: plain deep CNN vs ResNet vs DenseNet of '
                         'the same depth')
  sizes = SMALL if small else FULL
  epochs, norms = sizes['epochs'], sizes['norms']
  base = common.config(data_dir, **{'optimizer.name': 'momentum', 'train.epochs': epochs})
  data, num_classes = common.load(base)
  settings, grads = [], {}
  for name, shape in shapes(small).items():
    for norm in norms:
      setting = dict(shape, **{'model.norm': norm})
      grads[name, norm] = kernel_grad_norms(space.with_overrides(base, setting), data,
                                            num_classes)
      settings += [dict(setting, **{'optimizer.learning_rate': lr}) for lr in LRS]
  results = common.sweep(base, settings, data, num_classes)
  numbers, rows = {'layers': {n: len(g) for (n, _), g in grads.items()}}, []
  for k, (name, norm) in enumerate(grads):
    best = max(results[2 * k:2 * k + 2],
               key=lambda r: r.value('val_accuracy') if r.status == records.OK else -1)
    g = np.array(grads[name, norm])
    key = f'{name}_{norm}'
    numbers[key] = {'val_accuracy': best.value('val_accuracy'),
                    'train_loss': best.value('train_loss'),
                    'lr': best_lr(best, settings), 'first_to_last_grad_ratio': g[0] / g[-2],
                    'grad_norms': g.tolist()}
    rows.append([name, norm, len(g), best.value('train_loss'), best.value('val_accuracy'),
                 numbers[key]['lr'], g[0] / g[-2]])
  report.add(f'digits, momentum SGD at learning rates {LRS}, {epochs} epochs; the better '
             'learning rate (by validation accuracy) is shown.', '')
  report.table(['model', 'norm', 'weight layers', 'final train loss', 'val accuracy', 'lr',
                'grad norm, first / last conv'], rows)
  _plot(report, results, grads, settings)
  return report.write(numbers)


def best_lr(result, settings):
  return settings[result.trial]['optimizer.learning_rate']


def _plot(report, results, grads, settings):
  fig, (ax1, ax2) = common.subplots(2)
  for k, (name, norm) in enumerate(grads):
    style = dict(color=COLORS[name], ls='-' if norm == 'batch' else ':')
    for r in results[2 * k:2 * k + 2]:
      losses = [h['train_loss'] for h in r.history]
      ax1.plot(range(1, len(losses) + 1), losses, alpha=0.9, **style,
               label=f'{name}, norm {norm}, lr {best_lr(r, settings):g}')
    ax2.plot(range(1, len(grads[name, norm]) + 1), grads[name, norm], marker='.', **style,
             label=f'{name}, norm {norm}')
  ax1.set_yscale('log')
  ax1.set_xlabel('epoch')
  ax1.set_ylabel('train loss (log scale)')
  ax1.legend(fontsize=6)
  ax2.set_yscale('log')
  ax2.set_xlabel('layer (input to output)')
  ax2.set_ylabel('kernel gradient norm at init (log)')
  ax2.legend(fontsize=7)
  report.figure('skip_connections', fig, 'train loss per epoch; gradient norm per layer at init')


if __name__ == '__main__':
  common.main(run, 'skip_connections')
