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


def run(config, specs, data, num_classes, on_epoch=None, max_parallel=None):
  """Random settings, trained rung by rung; returns (settings, results) in trial order."""
  settings = sampling.random_trials(specs, config.seed, config.sweep.num_trials)
  configs = [space.with_overrides(config, s) for s in settings]
  groups = populations.create(configs, data, num_classes, config.seed,
                              max_parallel or config.sweep.max_parallel)
  results = {}
  for rung in rungs(config.sweep.min_epochs, config.sweep.eta, config.train.epochs):
    for group in groups:
      while group.population.epoch < rung:
        populations.run_epoch(group, data, on_epoch)
    if rung == config.train.epochs:
      break
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
    groups = next_groups
  for group in groups:
    for result in populations.results(group, data, range(group.size)):
      results[result['trial']] = result
  return settings, [results[i] for i in range(len(settings))]
