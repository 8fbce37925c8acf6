"""Hyperband (Li et al., JMLR 2018): brackets of successive halving that start at other budgets.

The widest bracket starts many trials at sweep.hyperband.min_epochs and halves them often; the
narrowest trains a few to train.epochs (the paper's R) with no pruning; between them, every
trade-off of breadth against depth. Each bracket is `halving.successive_halving` over its own
fresh random trials, so each rung of each bracket trains as populations of one compiled program
per shape. The schedule (hyperband_schedule) fixes the number of trials: sweep.num_trials is not
used. Knobs: sweep.hyperband.eta and .min_epochs.
"""

from absl import logging
import ml_collections

from bnlab import records
from bnlab import space
from bnlab.strategies import base
from bnlab.strategies import halving
from bnlab.strategies import hyperband_schedule
from bnlab.strategies import sampling

SEARCHES = True


def schedule(config: ml_collections.ConfigDict) -> list[hyperband_schedule.Bracket]:
  knobs = config.sweep.hyperband
  return hyperband_schedule.brackets(config.train.epochs, knobs.eta, knobs.min_epochs)


def check(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None:
  del specs
  knobs = config.sweep.hyperband
  if config.train.epochs % knobs.min_epochs:
    raise records.ConfigError(
        f'train.epochs={config.train.epochs!r} must be a multiple of '
        f'sweep.hyperband.min_epochs={knobs.min_epochs!r} (the longest rung is train.epochs)')
  base.single_seed(config)


def plan(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> base.Plan:
  del specs
  brackets = schedule(config)
  return base.Plan(hyperband_schedule.num_trials(brackets),
                   hyperband_schedule.member_epochs(brackets))


def run(context: base.Context) -> list[records.TrialRecord]:
  """Every bracket in turn, widest first; trial ids run on across the brackets."""
  config = context.config
  brackets = schedule(config)
  logging.info('%s', hyperband_schedule.describe(brackets))
  settings = sampling.random(context.specs, config.seed, hyperband_schedule.num_trials(brackets))
  done = []
  for bracket in brackets:
    rung_epochs = [rung.epochs for rung in bracket.rungs]
    bracket_settings = settings[len(done):len(done) + bracket.rungs[0].configs]
    done += halving.successive_halving(context, bracket_settings, len(done), rung_epochs,
                                       config.sweep.hyperband.eta, f'hyperband-s{bracket.s}')
  return done
