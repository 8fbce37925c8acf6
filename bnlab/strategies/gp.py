"""Gaussian-process Bayesian optimisation by ask-and-tell: Optuna's GPSampler, asked
sweep.gp.batch_size trials at once, trained together in one program (one per bucket), told back.

How a batch stays diverse (Optuna 5.0's GPSampler has no constant_liar flag):
- Once STARTUP_TRIALS (Optuna's 10) trials are complete, the sampler sees the trials asked
  before in the same batch as RUNNING and scores candidates with q-batch log expected
  improvement (qLogEI, sequential greedy): a point next to a running one gains little, so the
  K asks spread out instead of all landing on the one maximiser of EI.
- Before that, its independent RandomSampler (seeded with config.seed) draws each ask.
- Either may still repeat a setting in a discrete space (int and choice specs only). A repeat
  inside a batch is told FAIL (the GP ignores failed trials) and asked again, up to
  _MAX_REDRAWS times; a space with fewer distinct settings than the batch keeps its repeats.

Specs reach Optuna through space.optuna_distribution, as for tpe: log_uniform and
one_minus_log_uniform (1 - x) on a log scale, int_uniform as integers, choice as categories.
A diverged trial is told FAIL, a pruned one PRUNED: the GP is fitted on complete trials only.
The study lives in memory and every ask depends only on (seed, the results told), so a resumed
sweep replays the same batches and finds the trained ones in Context.train's journal.
"""

import importlib.util
from typing import Any

import ml_collections

from bnlab import lazy
from bnlab import records
from bnlab import space
from bnlab.strategies import asked
from bnlab.strategies import base
from bnlab.strategies import random_search
from bnlab.strategies import sampling
from bnlab.strategies import tpe

SEARCHES = True
plan = random_search.plan
# Asks per slot of a batch that may repeat an earlier setting of the batch before one is kept.
_MAX_REDRAWS = 16
# Complete trials before the GP takes over from random draws (Optuna's default; tests lower it).
STARTUP_TRIALS = 10


def check(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None:
  tpe.refuse_grid(specs, 'gp')
  if importlib.util.find_spec('torch') is None:  # Before anything compiles, not at the 11th ask.
    raise records.ConfigError("sweep.strategy='gp' needs torch (Optuna's GPSampler runs on "
                              'it): pip install -r requirements.txt')


def _study(config: ml_collections.ConfigDict) -> Any:
  optuna = lazy.import_module('optuna')  # Only the runs that use it pay.
  lazy.import_module('torch')  # Optuna would import it lazily at its first fit, Ctrl-C unsafe.
  optuna.logging.set_verbosity(optuna.logging.WARNING)  # No INFO line per trial.
  sampler = optuna.samplers.GPSampler(seed=config.seed, n_startup_trials=STARTUP_TRIALS,
                                      warn_independent_sampling=False)
  direction = 'maximize' if config.sweep.mode == 'max' else 'minimize'
  return optuna.create_study(sampler=sampler, direction=direction)


def _ask(study: Any, specs: dict[str, space.Spec], count: int) -> tuple[list, list[dict]]:
  """`count` trials asked while the previous ones run, and their settings, distinct where the
  space allows (see the module doc)."""
  import optuna  # pylint: disable=import-outside-toplevel  # Imported by _study already.
  trials, settings = [], []
  for _ in range(count):
    for redraw in range(_MAX_REDRAWS, 0, -1):
      trial, setting = sampling.ask(study, specs)  # Define-by-run where specs are conditional.
      if setting not in settings or redraw == 1:  # The last draw is kept, repeat or not.
        break
      study.tell(trial, state=optuna.trial.TrialState.FAIL)
    trials.append(trial)
    settings.append(setting)
  return trials, settings


def run(context: base.Context) -> list[records.TrialRecord]:
  if context.config.sweep.ask == 'slot':
    return asked.run(context, _study(context.config), _ask, context.config.sweep.gp.batch_size)
  return tpe.run_batches(context, _study(context.config), _ask, context.config.sweep.gp.batch_size)
