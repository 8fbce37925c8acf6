"""Hyperparameter importance: Optuna's fANOVA evaluator fed with the sweep's finished trials.

The trials become an Optuna study through `optuna.trial.create_trial`, each field with the
distribution its spec samples from (`space.optuna_distribution`, the mapping TPE uses too).

fANOVA's cost grows faster than linearly with the trials (Optuna marginalizes each of its 64
trees over every split of every field, in Python; timings in BENCHMARKS.md, engine change 10),
so larger sweeps are scored on a seeded random sample of MAX_TRIALS of their finished trials,
and the report says so.
"""

import random
import warnings

import optuna

from bnlab import records
from bnlab import space
from bnlab.records import TrialRecord

MIN_TRIALS = 3  # Fewer finished trials than this say nothing about importance.
MAX_TRIALS = 256  # More are sampled down to this many (see above).
Specs = dict[str, space.Spec]


def finished(results: list[TrialRecord], metric: str) -> list[TrialRecord]:
  """The trials that ran to the end (status ok) and count for `metric`: pruned, partial and
  trained-but-unwritten trials are left out, their metric is of fewer epochs or not final."""
  return [r for r in results if r.status == records.OK and r.scored(metric)]


def study(results: list[TrialRecord], specs: Specs, metric: str, mode: str) -> optuna.Study:
  """An Optuna study holding the finished trials."""
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  direction = 'maximize' if mode == 'max' else 'minimize'
  out = optuna.create_study(direction=direction)
  dists = {f: space.optuna_distribution(s) for f, s in specs.items()}
  for r in finished(results, metric):
    params = {f: space.to_optuna(specs[f], r.setting[f]) for f in specs}
    out.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                            value=r.value(metric)))
  return out


def sample(trials: list[TrialRecord], seed: int = 0) -> list[TrialRecord]:
  """At most MAX_TRIALS of `trials`, chosen at random by `seed`, in their order."""
  if len(trials) <= MAX_TRIALS:
    return trials
  return [trials[i] for i in sorted(random.Random(seed).sample(range(len(trials)), MAX_TRIALS))]


def importances(results: list[TrialRecord], specs: Specs, metric: str, mode: str,
                seed: int = 0) -> tuple[dict[str, float], str]:
  """({field: importance} summing to 1, most important first, and a note on the trials used:
  '' for all finished ones); or ({}, why not)."""
  if not specs:
    return {}, 'nothing is swept'
  specs = {f: s for f, s in specs.items() if s.condition is None}  # fANOVA: every trial's.
  if not specs:
    return {}, 'every swept field is conditional'

  done = finished(results, metric)
  used = sample(done, seed)
  values = [r.value(metric) for r in used]
  if len(values) < MIN_TRIALS:
    return {}, (f'{records.count(len(values), "finished trial")}; importance needs at least '
                f'{MIN_TRIALS}')
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
