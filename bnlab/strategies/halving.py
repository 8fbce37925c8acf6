"""Successive halving over epochs: every trial trains the first rung, the best 1/eta go on.

`vmap` cannot skip compute, so pruning SHRINKS the populations: after each rung the survivors'
state is gathered on the member axis into smaller populations (compiled once per size), and the
pruned trials stop there, reported `pruned` with the epochs they ran. A gathered member continues
exactly as it would have. Knobs: sweep.halving.eta and .min_epochs. Hyperband runs brackets of
this same loop (`successive_halving`).
"""

import ml_collections
import numpy as np

from bnlab import records
from bnlab import space
from bnlab import validate
from bnlab.strategies import base
from bnlab.strategies import sampling

SEARCHES = True


def check(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None:
  del specs
  validate.at_most(config, 'sweep.halving.min_epochs', 'train.epochs')
  base.single_seed(config)


def rungs(min_epochs: int, eta: int, epochs: int) -> list[int]:
  """The epochs at which trials are compared: min_epochs * eta**i below `epochs`, then `epochs`."""
  out, rung = [], min_epochs
  while rung < epochs:
    out.append(rung)
    rung *= eta
  return out + [epochs]


def plan(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> base.Plan:
  del specs
  n, knobs = config.sweep.num_trials, config.sweep.halving
  return base.Plan(n, rung_epochs(n, rungs(knobs.min_epochs, knobs.eta, config.train.epochs),
                                  knobs.eta))


def rung_epochs(trials: int, rung_list: list[int], eta: int) -> int:
  """Trial-epochs of one successive halving: the survivors of each rung train on from it."""
  total, before = 0, 0
  for rung in rung_list:
    total += trials * (rung - before)
    trials, before = max(1, trials // eta), rung
  return total


def survivors(scores: np.ndarray, eta: int) -> np.ndarray:
  """Indices of the best max(1, n // eta) of `scores` (higher is better; ties: lower index)."""
  order = np.argsort(-np.asarray(scores), kind='stable')
  return np.sort(order[:max(1, len(scores) // eta)])


def run(context: base.Context) -> list[records.TrialRecord]:
  config = context.config
  settings = sampling.random(context.specs, config.seed, config.sweep.num_trials)
  knobs = config.sweep.halving
  return successive_halving(context, settings, 0,
                            rungs(knobs.min_epochs, knobs.eta, config.train.epochs), knobs.eta,
                            'halving')


def successive_halving(context: base.Context, settings: list[dict], first_trial: int,
                       rung_list: list[int], eta: int, prefix: str) -> list[records.TrialRecord]:
  """Trains `settings` (trials first_trial, ...) rung by rung; their records in trial order.

  With a checkpointer each population of rung r is saved as '<prefix>-r<r>-<its trials>' on the
  train.checkpoint_every cadence and at the rung. A rerun restores every rung's populations in
  turn: the ranking, the pruned records and the gathered survivors are recomputed from the
  restored states (bit for bit what they were), and training goes on from the last checkpoint.
  """
  populations = context.populations(settings, first_trial)
  done = {}
  for r, rung in enumerate(rung_list):
    for population in populations:
      _train_to(context, population, rung, f'{prefix}-r{r}')
    if r == len(rung_list) - 1:
      break
    populations = _prune(context, populations, eta, done)
  for population in populations:
    for record in population.records(context.data, range(population.size)):
      done[record.trial] = record
  return [done[first_trial + i] for i in range(len(settings))]


def _train_to(context, population, rung, prefix):
  """Trains the population to epoch `rung`, resuming from and saving to its checkpoint."""
  key = context.checkpoint_key(prefix, population) if context.checkpointer else None
  if key:
    context.restore(population, key)
  while population.epoch < rung:
    population.run_epoch(context.data, context.on_epoch)
    if key:
      context.save_due(population, key, {'rung': rung}, force=population.epoch == rung)


def _prune(context, populations, eta, done):
  """The populations reduced to the survivors of the rung just reached; the pruned trials'
  records into `done`."""
  config = context.config
  owners = [(p, k) for p, population in enumerate(populations) for k in range(population.size)]
  scores = np.concatenate([population.scores(config.sweep.metric, config.sweep.mode)
                           for population in populations])
  kept = {owners[i] for i in survivors(scores, eta)}
  survivors_left = []
  for p, population in enumerate(populations):
    keep = [k for k in range(population.size) if (p, k) in kept]
    pruned = [k for k in range(population.size) if (p, k) not in kept]
    for record in population.records(context.data, pruned, records.PRUNED) if pruned else []:
      done[record.trial] = record
    if keep:
      survivors_left.append(population.take(keep, context.data))
  return survivors_left
