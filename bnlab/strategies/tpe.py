"""Optuna's TPE by ask-and-tell: sweep.tpe.batch_size trials asked, trained together, told back.

Each batch is one list of trials (one program per bucket). Trials asked together see each other
as pending (constant_liar), so a batch spreads out. A diverged trial is told as failed, so TPE
learns nothing from it but does not re-ask it.
"""

import warnings

import ml_collections

from bnlab import lazy
from bnlab import records
from bnlab import space
from bnlab import validate
from bnlab.strategies import base
from bnlab.strategies import random_search

SEARCHES = True
plan = random_search.plan


def check(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None:
  validate.positive(config, 'sweep.tpe.batch_size')
  for field, spec in specs.items():
    if spec.kind == 'grid':
      raise records.ConfigError(f'sweep.space.{field}={spec.kind}(...): sweep.strategy=\'tpe\' '
                                'takes no grid specs; use choice(...)')


def _study(config):
  optuna = lazy.import_module('optuna')  # Only the runs that use it pay.
  optuna.logging.set_verbosity(optuna.logging.WARNING)  # No INFO line per trial.
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
    sampler = optuna.samplers.TPESampler(seed=config.seed, constant_liar=True)
  direction = 'maximize' if config.sweep.mode == 'max' else 'minimize'
  return optuna.create_study(sampler=sampler, direction=direction)


def _ask(study, specs, count):
  distributions = {field: space.optuna_distribution(spec) for field, spec in specs.items()}
  asked = [study.ask(distributions) for _ in range(count)]
  return asked, [{f: space.from_optuna(specs[f], t.params[f]) for f in specs} for t in asked]


def _tell(study, asked, done, metric):
  import optuna  # pylint: disable=import-outside-toplevel
  for trial, record in zip(asked, done):
    if record.status == records.PRUNED:  # Stopped by sweep.pruner: Optuna's own state for it.
      study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    elif record.scored(metric):
      study.tell(trial, record.value(metric))
    else:
      study.tell(trial, state=optuna.trial.TrialState.FAIL)


def run(context: base.Context) -> list[records.TrialRecord]:
  config = context.config
  study, done = _study(config), []
  while len(done) < config.sweep.num_trials:
    count = min(config.sweep.tpe.batch_size, config.sweep.num_trials - len(done))
    asked, settings = _ask(study, context.specs, count)
    new = context.train(settings, len(done))
    _tell(study, asked, new, config.sweep.metric)
    done += new
  return done
