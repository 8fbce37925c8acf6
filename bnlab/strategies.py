"""Search strategies: each turns (config, specs) into the settings to train.

The engine trains whatever it is given; a strategy only decides which settings, and (for the
adaptive ones) when. Trial i's setting depends only on (seed, i) for the sampling strategies.
"""

from bnlab import space


def random_search(config, specs):
  return space.random_trials(specs, config.seed, config.sweep.num_trials)


def grid_search(config, specs):
  del config  # The grid is the product of the grid specs, whatever num_trials says.
  return space.grid_trials(specs)


PROPOSERS = {'random': random_search, 'grid': grid_search}


def propose(config, specs):
  """The list of {field: value} settings of the sweep, trial i at index i."""
  return PROPOSERS[config.sweep.strategy](config, specs)
