"""Strategies that look at results between rounds: coarse-to-fine boxes and Optuna's TPE.

Both train their rounds (batches) as lists of trials through a `sampling.Trainer`, so each round
is one compiled program per bucket, and both are deterministic functions of (config, results).
"""

import math
import warnings

import numpy as np
import optuna

from bnlab import report
from bnlab.strategies import sampling


def round_sizes(config):
  """num_trials split over sweep.rounds rounds; the first ones get the remainder, one each."""
  n, rounds = config.sweep.num_trials, config.sweep.rounds
  return [n // rounds + (1 if r < n % rounds else 0) for r in range(rounds)]


def top_box(specs, settings, results, config):
  """The box in u-space spanned by the best `sweep.top_fraction` of a round (at least two)."""
  ranking = report.ranked([dict(r, setting=s) for s, r in zip(settings, results)],
                          config.sweep.metric, config.sweep.mode)
  top = ranking[:max(2, math.ceil(config.sweep.top_fraction * len(settings)))]
  if not top:  # Every trial diverged: nothing to zoom in on.
    return np.zeros(len(specs)), np.ones(len(specs))
  cells = np.array([[sampling.u_cell(spec, r['setting'][field]) for field, spec in specs.items()]
                    for r in top])  # [top, d, 2]
  return cells[:, :, 0].min(0), cells[:, :, 1].max(0)


def coarse_to_fine(config, specs, train):
  """sweep.rounds rounds; round r + 1 samples (Sobol) inside the box of round r's best trials.

  Boxes live in u-space, i.e. in each spec's own scale (log for log specs), and inside [0, 1),
  so no round leaves the user's space. Round 0 is the quasirandom sweep's first trials.
  """
  lo, hi = np.zeros(len(specs)), np.ones(len(specs))
  settings, results = [], []
  for r, size in enumerate(round_sizes(config)):
    seed = config.seed if r == 0 else [config.seed, r]
    points = lo + sampling.quasirandom_u(len(specs), seed, size) * (hi - lo)
    new = sampling.settings_from_u(specs, points)
    new_results = train(new, len(settings))
    lo, hi = top_box(specs, new, new_results, config)
    settings += new
    results += new_results
  return settings, results


def _distribution(spec):
  """The Optuna distribution of a spec; one_minus_log_uniform is sampled as 1 - x, log-scale."""
  lo, hi = spec.args if spec.is_numeric else (None, None)
  if spec.kind == 'log_uniform':
    return optuna.distributions.FloatDistribution(lo, hi, log=True)
  if spec.kind == 'one_minus_log_uniform':
    return optuna.distributions.FloatDistribution(1 - hi, 1 - lo, log=True)
  if spec.kind == 'uniform':
    return optuna.distributions.FloatDistribution(lo, hi)
  if spec.kind == 'int_uniform':
    return optuna.distributions.IntDistribution(lo, hi)
  return optuna.distributions.CategoricalDistribution(list(range(len(spec.args))))


def _value(spec, sampled):
  if spec.kind == 'one_minus_log_uniform':
    return 1 - sampled
  if spec.kind == 'choice':
    return spec.args[sampled]
  return sampled


def _study(config):
  optuna.logging.set_verbosity(optuna.logging.WARNING)  # No INFO line per trial.
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
    # constant_liar: trials asked together see each other as pending, so a batch spreads out.
    sampler = optuna.samplers.TPESampler(seed=config.seed, constant_liar=True)
  direction = 'maximize' if config.sweep.mode == 'max' else 'minimize'
  return optuna.create_study(sampler=sampler, direction=direction)


def _ask(study, specs, count):
  distributions = {field: _distribution(spec) for field, spec in specs.items()}
  asked = [study.ask(distributions) for _ in range(count)]
  return asked, [{f: _value(specs[f], t.params[f]) for f in specs} for t in asked]


def tpe_first_batch(config, specs):
  return _ask(_study(config), specs, min(config.sweep.batch_size, config.sweep.num_trials))[1]


def tpe(config, specs, train):
  """Optuna TPE by ask-and-tell: sweep.batch_size trials asked, trained together, told back.

  A diverged trial is told as failed, so TPE learns nothing from it but does not re-ask it.
  """
  study = _study(config)
  settings, results = [], []
  while len(settings) < config.sweep.num_trials:
    asked, new = _ask(study, specs, min(config.sweep.batch_size,
                                        config.sweep.num_trials - len(settings)))
    new_results = train(new, len(settings))
    for trial, result in zip(asked, new_results):
      value = result[config.sweep.metric]
      if result['status'] == 'diverged' or not math.isfinite(value):
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
      else:
        study.tell(trial, value)
    settings += new
    results += new_results
  return settings, results
