"""Hyperparameter importance: Optuna's fANOVA evaluator fed with the sweep's finished trials.

The trials become an Optuna study through `optuna.trial.create_trial`, each field with the
distribution its spec samples from: log_uniform as a log FloatDistribution, one_minus_log_uniform
as a log FloatDistribution of 1 - x (the scale it is sampled on), int_uniform as an
IntDistribution, choice and grid as categorical (tuples by their text).
"""

import math
import warnings

import optuna

from bnlab.reporting import sweepfiles

MIN_TRIALS = 3  # Fewer finished trials than this say nothing about importance.


def distribution(spec):
  """The Optuna distribution of a spec, on the scale the spec samples."""
  if spec.kind in ('choice', 'grid'):
    return optuna.distributions.CategoricalDistribution([_choice(v) for v in spec.args])
  lo, hi = spec.args
  if spec.kind == 'int_uniform':
    return optuna.distributions.IntDistribution(lo, hi)
  if spec.kind == 'one_minus_log_uniform':
    return optuna.distributions.FloatDistribution(1 - hi, 1 - lo, log=True)
  return optuna.distributions.FloatDistribution(lo, hi, log=spec.kind == 'log_uniform')


def _choice(value):
  return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


def param_value(spec, value):
  """A swept value as the Optuna parameter of `distribution(spec)`."""
  if spec.kind in ('choice', 'grid'):
    return _choice(value)
  if spec.kind == 'one_minus_log_uniform':
    return 1 - value
  return value


def study(results, specs, metric, mode):
  """An Optuna study holding the finished (status ok, finite metric) trials."""
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  direction = 'maximize' if mode == 'max' else 'minimize'
  out = optuna.create_study(direction=direction)
  dists = {f: distribution(s) for f, s in specs.items()}
  for r in results:
    if r['status'] != sweepfiles.FINISHED or not math.isfinite(r[metric]):
      continue
    params = {f: param_value(specs[f], r['setting'][f]) for f in specs}
    out.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                            value=r[metric]))
  return out


def importances(results, specs, metric, mode, seed=0):
  """({field: importance}, '') summing to 1, most important first; or ({}, why not)."""
  if not specs:
    return {}, 'nothing is swept'
  finished = study(results, specs, metric, mode)
  values = [t.value for t in finished.trials]
  if len(values) < MIN_TRIALS:
    return {}, f'{len(values)} finished trials; importance needs at least {MIN_TRIALS}'
  if len(set(values)) == 1:
    return {}, f'every finished trial has {metric}={values[0]:.4g}'
  evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    scores = optuna.importance.get_param_importances(finished, evaluator=evaluator,
                                                     normalize=True)
  return {f: float(v) for f, v in scores.items()}, ''
