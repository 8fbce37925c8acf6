"""What every benchmarked system shares: the workloads, their data, their settings, their FLOPs.

A workload is the issue's recipe: an MLP with BN before ReLU, Adam with global-norm clip 1.0,
batch 64, learning rate log-uniform(1e-4, 1e-1), b2 one-minus-log-uniform(0.9, 0.999). Every
system trains the same settings (`settings(n)`, drawn by bnlab's own sampler from the one seed)
on the same arrays (bnlab's standardized split, saved once as .npz so the peers need not import
TensorFlow), so only the way of training differs.

Each peer module is also a script: `python bench/peers_x.py --system=... --workload=... --n=...`
runs one measurement in a fresh process and prints one JSON line (the run.py driver reads it).
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

SPACE = {'optimizer.learning_rate': 'log_uniform(1e-4, 1e-1)',
         'optimizer.b2': 'one_minus_log_uniform(0.9, 0.999)'}
BATCH_SIZE = 64
CLIP_NORM = 1.0
SEED = 0
WORKLOADS = {  # name -> (dataset, widths, epochs)
    'digits-3x128': ('digits', (128, 128, 128), 10),
    'digits-3x32': ('digits', (32, 32, 32), 10),
    'fashion-3x128': ('fashion_mnist', (128, 128, 128), 1),  # One epoch: 750 steps of 784 inputs.
}


def workload(name, epochs=None):
  """{'name', 'dataset', 'widths', 'epochs'} of a named workload (epochs overridable)."""
  dataset, widths, default_epochs = WORKLOADS[name]
  return {'name': name, 'dataset': dataset, 'widths': widths,
          'epochs': int(epochs or default_epochs)}


def launch_overrides(spec, data_dir, n):
  """launch.py flags that make configs/default.py this workload as an n-trial random sweep."""
  flags = [f'--config.dataset.name={spec["dataset"]}', f'--config.dataset.data_dir={data_dir}',
           f'--config.model.widths={spec["widths"]}', '--config.model.norm=batch',
           '--config.model.activation=relu', '--config.optimizer.name=adam',
           f'--config.optimizer.clip_norm={CLIP_NORM}', f'--config.train.batch_size={BATCH_SIZE}',
           f'--config.train.epochs={spec["epochs"]}', '--config.sweep.strategy=random',
           f'--config.sweep.num_trials={n}', f'--config.sweep.max_parallel={n}',
           f'--config.seed={SEED}']
  return flags + [f'--config.sweep.space.{k}={v}' for k, v in SPACE.items()]


def bnlab_config(spec, data_dir, n):
  """The same sweep as `launch_overrides`, as a config object (for in-process drivers)."""
  from configs import default  # pylint: disable=import-outside-toplevel
  config = default.get_config()
  config.seed = SEED
  config.dataset.name, config.dataset.data_dir = spec['dataset'], data_dir
  config.model.widths = tuple(spec['widths'])
  config.optimizer.clip_norm = CLIP_NORM
  config.train.batch_size, config.train.epochs = BATCH_SIZE, spec['epochs']
  config.sweep.num_trials = config.sweep.max_parallel = n
  for field, text in SPACE.items():
    section, key = field.split('.')
    config.sweep.space[section][key] = text
  return config


def settings(n):
  """The n (learning_rate, b2) pairs of the sweep: bnlab's sampler, trial i from (SEED, i)."""
  from bnlab import space  # pylint: disable=import-outside-toplevel
  specs = {field: space.parse(text, field) for field, text in SPACE.items()}
  trials = space.random_trials(specs, SEED, n)
  return [(t['optimizer.learning_rate'], t['optimizer.b2']) for t in trials]


def trial_configs(config):
  """The random sweep of `config` as launch.py trains it: (settings, trial configs).

  `sweep.prepare` checks the config and parses its space; the random strategy then draws trial
  i from (config.seed, i) (bnlab/strategies/random_search.py), which is what this repeats."""
  from bnlab import space  # pylint: disable=import-outside-toplevel
  from bnlab import sweep  # pylint: disable=import-outside-toplevel
  specs = sweep.prepare(config)
  trials = space.random_trials(specs, config.seed, config.sweep.num_trials)
  return trials, [space.with_overrides(config, t) for t in trials]


def npz_path(cache_dir, dataset):
  return os.path.join(cache_dir, f'{dataset}.npz')


def export_arrays(spec, data_dir, cache_dir):
  """Saves bnlab's standardized split of the workload's dataset as .npz for the peers."""
  path = npz_path(cache_dir, spec['dataset'])
  if not os.path.exists(path):
    from bnlab import data as data_lib  # pylint: disable=import-outside-toplevel
    config = bnlab_config(spec, data_dir, 1)
    arrays, num_classes = data_lib.load_numpy(
        data_lib.tfds_name(config.dataset), data_dir, '', float(config.dataset.val_fraction))
    os.makedirs(cache_dir, exist_ok=True)
    np.savez(path, num_classes=num_classes, **arrays)
  return path


def load_arrays(cache_dir, dataset):
  """The arrays {x_train, ..., y_test} flattened to [n, features], and num_classes."""
  with np.load(npz_path(cache_dir, dataset)) as f:
    arrays = {k: f[k] for k in f.files if k != 'num_classes'}
    num_classes = int(f['num_classes'])
  for k in ('x_train', 'x_val', 'x_test'):
    arrays[k] = arrays[k].reshape(len(arrays[k]), -1)
  return arrays, num_classes


def epoch_orders(num_train, epochs, seed=SEED):
  """Host-side batch orders for the peers: [epochs][steps, BATCH_SIZE], drop-last, shuffled."""
  rng = np.random.default_rng(seed)
  steps = num_train // BATCH_SIZE
  return [rng.permutation(num_train)[:steps * BATCH_SIZE].reshape(steps, BATCH_SIZE)
          for _ in range(epochs)]


def forward_flops(features, widths, num_classes, examples):
  """Matmul FLOPs of one forward pass (2 per multiply-add); BN, ReLU, softmax not counted."""
  sizes = [features, *widths, num_classes]
  return 2 * examples * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def member_epoch_flops(features, widths, num_classes, num_train, num_val):
  """Model FLOPs of one member-epoch: each step's forward + backward (2x forward), val forward."""
  steps = num_train // BATCH_SIZE
  return (3 * steps * forward_flops(features, widths, num_classes, BATCH_SIZE)
          + forward_flops(features, widths, num_classes, num_val))


def peak_rss_mb():
  """This process's peak resident memory in MB (Linux reports ru_maxrss in KB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
  """Wall seconds since the process started (or since `start`), for the JSON records."""

  def __init__(self):
    self.start = time.perf_counter()

  def __call__(self):
    return time.perf_counter() - self.start


def emit(record):
  """The one JSON line a peer script prints for run.py (last line of stdout)."""
  record['peak_rss_mb'] = round(peak_rss_mb(), 1)
  print(json.dumps(record), flush=True)


def accuracy_summary(accuracies):
  a = np.asarray(accuracies, np.float64)
  a = a[np.isfinite(a)]
  return {'best_val_accuracy': float(a.max()) if a.size else float('nan'),
          'median_val_accuracy': float(np.median(a)) if a.size else float('nan')}


def peer_args(systems):
  """The command line every peer script takes: (args, workload spec, arrays, num_classes)."""
  parser = argparse.ArgumentParser()
  parser.add_argument('--system', choices=systems, required=True)
  parser.add_argument('--workload', choices=tuple(WORKLOADS), required=True)
  parser.add_argument('--epochs', type=int, default=0)
  parser.add_argument('--n', type=int, required=True)
  parser.add_argument('--max_trials', type=int, default=8)
  parser.add_argument('--cache_dir', required=True)
  args = parser.parse_args()
  spec = workload(args.workload, args.epochs)
  arrays, num_classes = load_arrays(args.cache_dir, spec['dataset'])
  return args, spec, arrays, num_classes
