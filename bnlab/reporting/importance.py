"""Hyperparameter importance: Optuna's fANOVA evaluator fed with the sweep's finished trials.

The trials become an Optuna study through `optuna.trial.create_trial`, each field with the
distribution its spec samples from: log_uniform as a log FloatDistribution, one_minus_log_uniform
as a log FloatDistribution of 1 - x (the scale it is sampled on), int_uniform as an
IntDistribution, choice and grid as categorical (tuples by their text).

fANOVA's cost grows about as trials^1.6 (Optuna marginalizes each of its 64 trees over every
split of every field, in Python): on a 2-core EPYC 0.6 s for the 256 trials of the benchmark's
sweep and 4.4 s for its 1,024; 1.4, 4.9, 14 and 40 s for 256 to 2,048 trials of a synthetic
continuous metric, whose trees grow deeper. Larger sweeps are scored on a seeded random sample
of MAX_TRIALS of their finished trials, and the report says so.
"""

import math
import random
import warnings

import optuna

from bnlab.reporting import sweepfiles

MIN_TRIALS = 3  # Fewer finished trials than this say nothing about importance.
MAX_TRIALS = 256  # More are sampled down to this many (see above).


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


def finished(results, metric):
  """The trials with status ok and a finite metric."""
  return [r for r in results if r['status'] == sweepfiles.FINISHED and math.isfinite(r[metric])]


def study(results, specs, metric, mode):
  """An Optuna study holding the finished trials."""
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  direction = 'maximize' if mode == 'max' else 'minimize'
  out = optuna.create_study(direction=direction)
  dists = {f: distribution(s) for f, s in specs.items()}
  for r in finished(results, metric):
    params = {f: param_value(specs[f], r['setting'][f]) for f in specs}
    out.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                            value=r[metric]))
  return out


def sample(trials, seed=0):
  """At most MAX_TRIALS of `trials`, chosen at random by `seed`, in their order."""
  if len(trials) <= MAX_TRIALS:
    return trials
  return [trials[i] for i in sorted(random.Random(seed).sample(range(len(trials)), MAX_TRIALS))]


def importances(results, specs, metric, mode, seed=0):
  """({field: importance} summing to 1, most important first, and a note on the trials used:
  '' for all finished ones); or ({}, why not)."""
  if not specs:
    return {}, 'nothing is swept'
  done = finished(results, metric)
  used = sample(done, seed)
  values = [r[metric] for r in used]
  if len(values) < MIN_TRIALS:
    return {}, f'{len(values)} finished trials; importance needs at least {MIN_TRIALS}'
  note = f'a random {len(used)} of the {len(done)} finished trials' if len(used) < len(done) else ''
  if len(set(values)) == 1:
    who = f'every one of {note}' if note else 'every finished trial'
    return {}, f'{who} has {metric}={values[0]:.4g}'
  evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    scores = optuna.importance.get_param_importances(study(used, specs, metric, mode),
                                                     evaluator=evaluator, normalize=True)
  return {f: float(v) for f, v in scores.items()}, note
