"""Successive halving over epochs: every trial trains the first rung, the best 1/eta go on.

`vmap` cannot skip compute, so pruning SHRINKS the population: after each rung the survivors'
state is gathered on the member axis into a smaller population (compiled once per size), and the
pruned trials stop there. A gathered member continues exactly as it would have.
"""

import numpy as np

from bnlab import space
from bnlab.strategies import populations
from bnlab.strategies import sampling


def rungs(min_epochs, eta, epochs):
  """The epochs at which trials are compared: min_epochs * eta**i below `epochs`, then `epochs`."""
  out, rung = [], min_epochs
  while rung < epochs:
    out.append(rung)
    rung *= eta
  return out + [epochs]


def survivors(scores, eta):
  """Indices of the best max(1, n // eta) of `scores` (higher is better; ties: lower index)."""
  order = np.argsort(-np.asarray(scores), kind='stable')
  return np.sort(order[:max(1, len(scores) // eta)])


def run(config, specs, data, num_classes, on_epoch=None, max_parallel=None, checkpointer=None):
  """Random settings, trained rung by rung; returns (settings, results) in trial order.

  With a `checkpointer` each group of rung r is saved as 'halving-r<r>-<its trials>' on the
  train.checkpoint_every cadence and at the rung. A rerun restores every rung's groups in turn:
  the ranking, the pruned results and the gathered survivors are recomputed from the restored
  states (bit for bit what they were), and training goes on from the last checkpoint.
  """
  settings = sampling.random_trials(specs, config.seed, config.sweep.num_trials)
  configs = [space.with_overrides(config, s) for s in settings]
  groups = populations.create(configs, data, num_classes, config.seed,
                              max_parallel or config.sweep.max_parallel)
  results = {}
  for r, rung in enumerate(rungs(config.sweep.min_epochs, config.sweep.eta, config.train.epochs)):
    for group in groups:
      _train_to(group, rung, f'halving-r{r}', configs, config, data, on_epoch, checkpointer)
    if rung == config.train.epochs:
      break
    groups = _prune(groups, config, data, results)
  for group in groups:
    for result in populations.results(group, data, range(group.size)):
      results[result['trial']] = result
  return settings, [results[i] for i in range(len(settings))]


def _train_to(group, rung, prefix, configs, config, data, on_epoch, checkpointer):
  """Trains the group to epoch `rung`, resuming from and saving to its checkpoint."""
  key = None
  if checkpointer:
    key = populations.name(prefix, group, configs, config.seed)
    populations.restore(group, checkpointer, key)
  while group.population.epoch < rung:
    populations.run_epoch(group, data, on_epoch)
    epoch = group.population.epoch
    if checkpointer and (epoch == rung or checkpointer.due(epoch, config.train.epochs)):
      populations.save(group, checkpointer, key, {'rung': rung})


def _prune(groups, config, data, results):
  """The groups reduced to the survivors of the rung just reached; pruned results into `results`."""
  owners = [(g, k) for g, group in enumerate(groups) for k in range(group.size)]
  scores = np.concatenate([populations.scores(group, config) for group in groups])
  kept = {owners[i] for i in survivors(scores, config.sweep.eta)}
  next_groups = []
  for g, group in enumerate(groups):
    keep = [k for k in range(group.size) if (g, k) in kept]
    pruned = [k for k in range(group.size) if (g, k) not in kept]
    for result in populations.results(group, data, pruned, status='pruned') if pruned else []:
      results[result['trial']] = result
    if keep:
      next_groups.append(populations.take(group, keep, data))
  return next_groups
