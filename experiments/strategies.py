"""Best validation accuracy vs total epochs spent, for every search strategy on one space.

    python experiments/strategies.py --seeds=3 --out=experiments/strategies.md

Each strategy runs its config (configs/<strategy>.py: 64 trials, 9 epochs, configs/sweep.py's
space; `grid` takes cell centres of that space, 4 x 2 x 4 x 2 for 64 trials, 4 x 1 x 2 x 2 for
16) with seeds 0..seeds-1, and reports the best val_accuracy, the test accuracy of that winner,
the member-epochs it trained and the wall time. A markdown table goes to stdout and to --out.
Hyperband ignores --num_trials: its bracket schedule over --epochs sets its trials (17 trials and
69 member-epochs at 9 epochs, 5 and 11 at 3), so compare it by its member-epochs column.
Also measured: --num_trials=16 --epochs=3 --out=experiments/strategies_16x3.md

`median` is random search with sweep.pruner=median (Optuna's MedianPruner rule, from epoch 1).
On Fashion-MNIST (Debian's local files; digits saturates and cannot rank the strategies):

    python experiments/strategies.py --dataset=fashion_mnist --train_examples=12000 \
        --num_trials=32 --out=experiments/strategies_fashion_mnist.md
"""

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import numpy as np

from bnlab import checks
from bnlab import data as data_lib
from bnlab import files
from bnlab import records
from bnlab import strategies
from bnlab.strategies import base
from configs import sweep as sweep_config

_SEEDS = flags.DEFINE_integer('seeds', 3, 'Seeds per strategy (0..seeds-1).')
_TRIALS = flags.DEFINE_integer('num_trials', 64, 'Trials per sweep.')
_EPOCHS = flags.DEFINE_integer('epochs', 9, 'Epochs per trial.')
# `median`: random search with the median pruner.
_ONLY = flags.DEFINE_list('strategies', list(strategies.STRATEGIES) + ['median'],
                          'Strategies to run.')
_DATASET = flags.DEFINE_enum('dataset', 'digits', ['digits', 'fashion_mnist'], 'Dataset.')
_TRAIN = flags.DEFINE_integer('train_examples', 0, 'Train on the first N examples (0 = all).')
_OUT = flags.DEFINE_string('out', '', 'Markdown file for the table.')
# Cells per field of the grid, by number of trials (learning rate first: it matters most).
GRID_CELLS = {
    64: {'optimizer.learning_rate': 4, 'optimizer.b2': 2, 'model.bn_momentum': 4,
         'model.widths': 2},
    32: {'optimizer.learning_rate': 4, 'optimizer.b2': 2, 'model.bn_momentum': 2,
         'model.widths': 2},
    16: {'optimizer.learning_rate': 4, 'optimizer.b2': 1, 'model.bn_momentum': 2,
         'model.widths': 2},
}


def grid_space(config):
  """The space's specs turned into grids of cell centres (u = (i + 0.5) / n) in their scales,
  num_trials cells in all."""
  specs = checks.check_sweep(config)
  for field, cells in GRID_CELLS[config.sweep.num_trials].items():
    values = [specs[field].value((i + 0.5) / cells) for i in range(cells)]
    section, key = field.split('.')
    config.sweep.space[section][key] = f'grid({", ".join(map(repr, values))})'
  config.sweep.strategy = 'grid'
  return config


def config_for(strategy, seed):
  if strategy in ('grid', 'random', 'median'):
    config = sweep_config.get_config()
  else:
    config = __import__(f'configs.{strategy}', fromlist=['get_config']).get_config()
  if strategy == 'median':
    config.sweep.pruner = 'median'
  config.dataset.name = _DATASET.value
  config.seed = seed
  config.sweep.num_trials = _TRIALS.value
  config.train.epochs = _EPOCHS.value
  # TPE learns between batches only: keep at least four batches on small budgets.
  config.sweep.tpe.batch_size = min(config.sweep.tpe.batch_size, max(1, _TRIALS.value // 4))
  return grid_space(config) if strategy == 'grid' else config


def measure(strategy, seed, data, num_classes):
  config = config_for(strategy, seed)
  specs = checks.check_sweep(config)
  start = time.perf_counter()
  context = base.Context(config, specs, data, num_classes, config.sweep.max_parallel)
  results = strategies.STRATEGIES[config.sweep.strategy].run(context)
  best = records.ranked(results, config.sweep.metric, config.sweep.mode)[0]
  return {'best': best.value('val_accuracy'), 'test': best.value('test_accuracy'),
          'epochs': sum(r.epochs for r in results) * config.sweep.seeds,
          'seconds': time.perf_counter() - start}


def table(rows):
  lines = ['| strategy | best val_accuracy (mean ± sd over seeds) | per seed | test acc of best '
           '| member-epochs | wall s (2 cores) |', '|---|---|---|---|---|---|']
  for strategy, runs in rows.items():
    best = np.array([r['best'] for r in runs])
    lines.append(
        f'| {strategy} | {best.mean():.4f} ± {best.std(ddof=1) if len(best) > 1 else 0:.4f} '
        f'| {" ".join(f"{b:.4f}" for b in best)} '
        f'| {np.mean([r["test"] for r in runs]):.4f} '
        f'| {np.mean([r["epochs"] for r in runs]):.0f} '
        f'| {np.mean([r["seconds"] for r in runs]):.0f} |')
  return '\n'.join(lines)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  dataset = sweep_config.get_config().dataset
  dataset.name = _DATASET.value
  data, num_classes = data_lib.load(dataset)
  if _TRAIN.value:
    data = dict(data, x_train=data['x_train'][:_TRAIN.value],
                y_train=data['y_train'][:_TRAIN.value])
  rows = {}
  for strategy in _ONLY.value:
    rows[strategy] = [measure(strategy, seed, data, num_classes) for seed in range(_SEEDS.value)]
    print(strategy, rows[strategy], flush=True)
  text = table(rows)
  if 'random' in rows and 'halving' in rows:
    gap = [h['best'] - r['best'] for h, r in zip(rows['halving'], rows['random'])]
    share = (np.mean([r['epochs'] for r in rows['halving']])
             / np.mean([r['epochs'] for r in rows['random']]))
    text += (f'\n\nhalving minus random, best val_accuracy per seed: '
             f'{" ".join(f"{g:+.4f}" for g in gap)}; halving spent {share:.0%} of random\'s '
             'member-epochs.')
  print(text)
  if _OUT.value:
    command = ' '.join(['python experiments/strategies.py'] + sys.argv[1:])
    files.write_text(_OUT.value, f'    {command}\n\n{text}\n')


if __name__ == '__main__':
  app.run(main)
