"""Optuna's TPE by ask-and-tell: sweep.tpe.batch_size trials asked, trained together, told back.

Each batch is one list of trials (one program per bucket). Trials asked together see each other
as pending (constant_liar), so a batch spreads out. A diverged trial is told as failed, so TPE
learns nothing from it but does not re-ask it.
"""

import warnings

import ml_collections

from bnlab import lazy
from bnlab import pareto
from bnlab import records
from bnlab import space
from bnlab.strategies import asked
from bnlab.strategies import base
from bnlab.strategies import random_search
from bnlab.strategies import sampling

SEARCHES = True
plan = random_search.plan


def check(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None:
  refuse_grid(specs, 'tpe')


def refuse_grid(specs: dict[str, space.Spec], strategy: str) -> None:
  """An Optuna sampler asks from distributions: a grid spec has none."""
  for field, spec in specs.items():
    if spec.kind == 'grid':
      raise records.ConfigError(f'sweep.space.{field}={spec.kind}(...): sweep.strategy='
                                f'{strategy!r} takes no grid specs; use choice(...)')


def _study(config):
  optuna = lazy.import_module('optuna')  # Only the runs that use it pay.
  optuna.logging.set_verbosity(optuna.logging.WARNING)  # No INFO line per trial.
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
    sampler = optuna.samplers.TPESampler(seed=config.seed, constant_liar=True)
  direction = lambda mode: 'maximize' if mode == 'max' else 'minimize'
  objectives = pareto.parse(config.sweep.objectives)
  if objectives:  # TPESampler is Optuna's multi-objective TPE on a study of several directions.
    return optuna.create_study(sampler=sampler,
                               directions=[direction(o.mode) for o in objectives])
  return optuna.create_study(sampler=sampler, direction=direction(config.sweep.mode))


def _ask(study, specs, count):
  # One at a time: each ask sees the ones before it as running (constant_liar).
  pairs = [sampling.ask(study, specs) for _ in range(count)]
  return [trial for trial, _ in pairs], [setting for _, setting in pairs]


def tell(study, trials: list, done: list[records.TrialRecord],
         config: ml_collections.ConfigDict) -> None:
  """Each asked trial's outcome back to the study (asked.tell, without the per-epoch curve)."""
  for trial, record in zip(trials, done):
    asked.tell(study, trial, record, config, curve=False)


def run_batches(context: base.Context, study, ask, batch_size: int) -> list[records.TrialRecord]:
  """Ask-and-tell in batches: `ask(study, specs, count)` -> (trials, settings), trained together
  by `context.train`, told back, until sweep.num_trials are done."""
  config, done = context.config, []
  while len(done) < config.sweep.num_trials:
    count = min(batch_size, config.sweep.num_trials - len(done))
    trials, settings = ask(study, context.specs, count)
    new = context.train(settings, len(done))
    tell(study, trials, new, config)
    done += new
  return done


def run(context: base.Context) -> list[records.TrialRecord]:
  if context.config.sweep.ask == 'slot':
    return asked.run(context, _study(context.config), _ask, context.config.sweep.tpe.batch_size)
  return run_batches(context, _study(context.config), _ask, context.config.sweep.tpe.batch_size)
