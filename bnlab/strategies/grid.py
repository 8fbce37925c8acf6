"""Grid search: the cartesian product of the `grid(...)` specs, trained as one list of trials."""

import ml_collections

from bnlab import records
from bnlab import space
from bnlab.strategies import base
from bnlab.strategies import sampling

SEARCHES = False


def check(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None:
  del config
  try:
    space.check_grid(specs)
  except space.SpecError as e:
    raise records.ConfigError(str(e)) from None


def plan(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> base.Plan:
  trials = len(sampling.grid(specs))  # The product's size: no setting is made.
  return base.Plan(trials, trials * config.train.epochs)


def run(context: base.Context) -> list[records.TrialRecord]:
  return context.train(sampling.grid(context.specs), 0)
