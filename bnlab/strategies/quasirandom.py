"""Quasi-random search: a scrambled Sobol sequence through each spec's scale; point i is trial i."""

from bnlab import records
from bnlab.strategies import base
from bnlab.strategies import random_search
from bnlab.strategies import sampling

SEARCHES = True
check = random_search.check
plan = random_search.plan


def run(context: base.Context) -> list[records.TrialRecord]:
  config = context.config
  settings = sampling.quasirandom(context.specs, config.seed, config.sweep.num_trials)
  return context.train(settings, 0)
