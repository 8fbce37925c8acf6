"""Search strategies: each decides which settings the engine trains, and (adaptive ones) when.

The engine trains whatever it is given and never learns which strategy drives it. Strategies that
train lists of trials (grid, random, quasirandom, coarse_to_fine rounds, tpe batches) go through
`engine.train_trials`; halving and pbt drive `engine.Population`s directly, since they change a
population between epochs. Every driver is a deterministic function of (config, metrics so far),
with its state in plain Python data, so a resumed run can replay it.

`run(config, specs, data, num_classes, on_epoch, max_parallel, checkpointer)` returns (settings,
results): setting i is trial i's {field: value} (for pbt, the values it ended with) and results[i]
is its result dict. Lists of trials resume through the checkpointer's chunk journal (the adaptive
drivers replay from journaled results); halving and pbt checkpoint their populations (and their
own state: the rung, PBT's explored values) and continue them from the last checkpoint.
"""

from bnlab.strategies import adaptive
from bnlab.strategies import halving
from bnlab.strategies import pbt
from bnlab.strategies import sampling

STRATEGIES = ('grid', 'random', 'quasirandom', 'coarse_to_fine', 'halving', 'pbt', 'tpe')
# Strategies that search: they refuse an empty space (grid and random train it as it is).
SEARCHING = ('quasirandom', 'coarse_to_fine', 'halving', 'pbt', 'tpe')


def propose(config, specs):
  """The settings known before anything trains: all of them for grid, random and quasirandom,
  the first round or the initial population for the adaptive strategies."""
  strategy, n = config.sweep.strategy, config.sweep.num_trials
  if strategy == 'grid':
    return sampling.grid_trials(specs)
  if strategy == 'quasirandom':
    return sampling.quasirandom_trials(specs, config.seed, n)
  if strategy == 'coarse_to_fine':
    return sampling.quasirandom_trials(specs, config.seed, adaptive.round_sizes(config)[0])
  if strategy == 'tpe':
    return adaptive.tpe_first_batch(config, specs)
  return sampling.random_trials(specs, config.seed, n)  # random, halving, pbt.


def run(config, specs, data, num_classes, on_epoch=None, max_parallel=None, checkpointer=None):
  """Runs the sweep's strategy to the end; returns (settings, results), trial i at index i.

  `max_parallel` (default sweep.max_parallel) caps the members of one program.
  """
  strategy = config.sweep.strategy
  max_parallel = max_parallel or config.sweep.max_parallel
  if strategy == 'halving':
    return halving.run(config, specs, data, num_classes, on_epoch, max_parallel, checkpointer)
  if strategy == 'pbt':
    return pbt.run(config, specs, data, num_classes, on_epoch, max_parallel, checkpointer)
  train = sampling.Trainer(config, data, num_classes, on_epoch, max_parallel, checkpointer)
  if strategy == 'coarse_to_fine':
    return adaptive.coarse_to_fine(config, specs, train)
  if strategy == 'tpe':
    return adaptive.tpe(config, specs, train)
  settings = propose(config, specs)
  return settings, train(settings, 0)
