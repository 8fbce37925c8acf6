"""Random search: every spec drawn independently; trial i depends only on (seed, i)."""

import ml_collections

from bnlab import records
from bnlab import space
from bnlab.strategies import base
from bnlab.strategies import sampling

SEARCHES = False


def check(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None:
  del config, specs  # No section of its own.


def plan(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> base.Plan:
  del specs
  return base.Plan(config.sweep.num_trials, config.sweep.num_trials * config.train.epochs)


def run(context: base.Context) -> list[records.TrialRecord]:
  config = context.config
  return context.train(sampling.random(context.specs, config.seed, config.sweep.num_trials), 0)
