"""Coarse-to-fine: rounds of Sobol points, each round inside the box of the previous round's best.

Boxes live in u-space, i.e. in each spec's own scale (log for log specs), and inside [0, 1), so
no round leaves the user's space. Round 0 is the quasirandom sweep's first trials. Knobs:
sweep.coarse_to_fine.rounds and .top_fraction.
"""

import math

import ml_collections
import numpy as np

from bnlab import records
from bnlab import space
from bnlab.strategies import base
from bnlab.strategies import random_search
from bnlab.strategies import sampling

SEARCHES = True
plan = random_search.plan


def check(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None:
  del config, specs  # Its section's fields each have bounds alone: prechecks.BOUNDS.


def round_sizes(config: ml_collections.ConfigDict) -> list[int]:
  """num_trials split over the rounds; the first ones get the remainder, one each."""
  return sampling.split(config.sweep.num_trials, config.sweep.coarse_to_fine.rounds)


def top_box(specs: dict[str, space.Spec], done: list[records.TrialRecord],
            config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
  """The box in u-space spanned by the best `top_fraction` of a round (at least two)."""
  ranking = records.ranked(done, config.sweep.metric, config.sweep.mode)
  top = ranking[:max(2, math.ceil(config.sweep.coarse_to_fine.top_fraction * len(done)))]
  if not top:  # Every trial diverged: nothing to zoom in on.
    return np.zeros(len(specs)), np.ones(len(specs))
  # [top, d, 2]; a field a trial left inactive (a conditional spec) says nothing of its box.
  cells = np.array([[sampling.u_cell(spec, r.setting[field]) if field in r.setting
                     else (np.inf, -np.inf) for field, spec in specs.items()] for r in top])
  lo, hi = cells[:, :, 0].min(0), cells[:, :, 1].max(0)
  unseen = lo > hi  # Inactive in every top trial: its box stays the whole range.
  return np.where(unseen, 0.0, lo), np.where(unseen, 1.0, hi)


def run(context: base.Context) -> list[records.TrialRecord]:
  config, specs = context.config, context.specs
  lo, hi = np.zeros(len(specs)), np.ones(len(specs))
  done = []
  for r, size in enumerate(round_sizes(config)):
    seed = config.seed if r == 0 else [config.seed, r]
    points = lo + sampling.quasirandom_u(len(specs), seed, size) * (hi - lo)
    new = context.train(sampling.from_u(specs, points), len(done))
    lo, hi = top_box(specs, new, config)
    done += new
  return done
