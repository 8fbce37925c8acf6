"""The time-to-quality peer: the tutorial's recipe, Optuna's TPE with its MedianPruner driving a
PyTorch loop one trial after another, on configs/sweep.py's space.

    python bench/ttq_peer.py --npz=/tmp/ttq/fashion_mnist.npz --seed=0 --out=/tmp/ttq/peer.jsonl

Each trial trains bnlab's MLP (bias-free Linear -> BatchNorm1d -> ReLU per width, a Linear head)
with Adam at batch 64 for up to `--epochs` epochs, reports its validation accuracy (running BN
averages, eval mode) after every epoch and stops when the pruner says so. Every epoch appends one
JSON row {trial, epoch, val_accuracy, test_accuracy} to `--out`, flushed, which the driver
(bench/time_to_quality.py) timestamps as it appears. Runs until killed or `--trials` are done.
"""

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import optuna  # pylint: disable=g-import-not-at-top
import torch  # pylint: disable=g-import-not-at-top

from bench import peers_torch  # pylint: disable=g-import-not-at-top

BATCH_SIZE = 64
WIDTHS = {'128x128x128': (128, 128, 128), '256x256': (256, 256)}  # configs/sweep.py's choice.


def suggest(trial: optuna.Trial) -> dict:
  """configs/sweep.py's space as a tutorial user writes it: 1-beta on the log scale."""
  return {'learning_rate': trial.suggest_float('learning_rate', 1e-4, 1e-1, log=True),
          'one_minus_b2': trial.suggest_float('one_minus_b2', 1e-4, 0.1, log=True),
          'one_minus_bn_momentum': trial.suggest_float('one_minus_bn_momentum', 0.01, 0.5,
                                                       log=True),
          'widths': WIDTHS[trial.suggest_categorical('widths', list(WIDTHS))]}


def build(setting: dict, features: int, num_classes: int):
  model = peers_torch.make_mlp(features, setting['widths'], num_classes)
  for layer in model:
    if isinstance(layer, torch.nn.BatchNorm1d):  # torch's momentum is bnlab's 1 - momentum.
      layer.momentum = setting['one_minus_bn_momentum']
  optimizer = torch.optim.Adam(model.parameters(), lr=setting['learning_rate'],
                               betas=(0.9, 1.0 - setting['one_minus_b2']), eps=1e-8)
  return model, optimizer


@torch.no_grad()
def accuracy(model, x, y) -> float:
  model.eval()
  return float((model(x).argmax(-1) == y).float().mean())


def objective(trial, data, epochs, out, rng):
  setting = suggest(trial)
  x, y = data['x_train'], data['y_train']
  model, optimizer = build(setting, x.shape[1], int(data['num_classes']))
  steps = len(x) // BATCH_SIZE
  val = 0.0
  for epoch in range(1, epochs + 1):
    model.train()
    for batch in torch.from_numpy(rng.permutation(len(x))[:steps * BATCH_SIZE]).view(steps, -1):
      optimizer.zero_grad(set_to_none=True)
      torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
      optimizer.step()
    val = accuracy(model, data['x_val'], data['y_val'])
    test = accuracy(model, data['x_test'], data['y_test'])
    out.write(json.dumps({'trial': trial.number, 'epoch': epoch, 'val_accuracy': val,
                          'test_accuracy': test}) + '\n')
    out.flush()
    if not np.isfinite(val):
      break
    trial.report(val, epoch)
    if trial.should_prune():
      raise optuna.TrialPruned()
  return val


def load(path: str) -> dict:
  with np.load(path) as f:
    arrays = {k: f[k] for k in f.files}
  data = {'num_classes': int(arrays.pop('num_classes'))}
  for k, v in arrays.items():
    v = v.reshape(len(v), -1) if k.startswith('x') else v.astype(np.int64)
    data[k] = torch.from_numpy(np.ascontiguousarray(v))
  return data


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--npz', required=True)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--epochs', type=int, default=10)
  parser.add_argument('--trials', type=int, default=100_000)
  parser.add_argument('--out', required=True)
  args = parser.parse_args()
  torch.manual_seed(args.seed)
  torch.set_num_threads(os.cpu_count() or 1)
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  data = load(args.npz)
  rng = np.random.default_rng(args.seed)
  study = optuna.create_study(direction='maximize',
                              sampler=optuna.samplers.TPESampler(seed=args.seed),
                              pruner=optuna.pruners.MedianPruner())
  with open(args.out, 'a') as out:
    study.optimize(lambda t: objective(t, data, args.epochs, out, rng), n_trials=args.trials)


if __name__ == '__main__':
  main()
