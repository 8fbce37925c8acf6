"""Which points of the space to try, as u in [0, 1)^d, and training a list of them with k seeds.

A spec maps u to a value through its inverse CDF (`Spec.value`), so a sampler only produces u's:
uniform random ones (`random`), a scrambled Sobol sequence (`quasirandom`) or points of a
sub-box (`coarse_to_fine`). `Trainer` trains a list of settings through `engine.train_trials`,
each with `sweep.seeds` init/data seeds side by side in one program, and reports per setting the
mean over seeds, its spread and a 95% interval.
"""

import math

import numpy as np

from bnlab import engine
from bnlab import space

METRICS = ('val_accuracy', 'val_loss', 'test_accuracy', 'train_loss')
random_trials = space.random_trials
grid_trials = space.grid_trials


def quasirandom_u(num_dims, seed, num_points):
  """The first `num_points` points of one scrambled Sobol sequence seeded by `seed`.

  Drawn in a power of two (where Sobol's balance holds) and cut: point i is the same whatever
  `num_points` is, so raising num_trials extends a quasirandom sweep like a random one.
  """
  # scipy.stats here, not at the top: 0.6-0.8 s of every launch's imports otherwise.
  from scipy.stats import qmc  # pylint: disable=import-outside-toplevel
  sobol = qmc.Sobol(num_dims, scramble=True, rng=np.random.default_rng(seed))
  return sobol.random_base2(max(0, math.ceil(math.log2(max(num_points, 1)))))[:num_points]


def settings_from_u(specs, points):
  """One {field: value} per row of `points` [n, d], columns in the order of `specs`."""
  return [{field: spec.value(u) for (field, spec), u in zip(specs.items(), row)}
          for row in points]


def quasirandom_trials(specs, seed, num_trials):
  return settings_from_u(specs, quasirandom_u(len(specs), seed, num_trials))


def u_cell(spec, value):
  """The interval of u that maps to `value`: a point for continuous specs, a cell for discrete."""
  if spec.kind in ('choice', 'grid'):
    i, n = [repr(a) for a in spec.args].index(repr(value)), len(spec.args)
    return i / n, (i + 1) / n
  if spec.kind == 'int_uniform':
    lo, hi = spec.args
    n = hi - lo + 1
    return (value - lo) / n, (value - lo + 1) / n
  u = min(max(spec.quantile(value), 0.0), 1.0)
  return u, u


class Trainer:
  """`trainer(settings, first_trial)` trains settings as trials first_trial, first_trial + 1, ...

  With sweep.seeds = k each setting becomes k members whose configs differ only by `seed`
  (config.seed + s): they share a bucket and a program, each with its own init and data order.
  """

  def __init__(self, config, data, num_classes, on_epoch=None, max_parallel=None,
               checkpointer=None):
    self.config, self.data, self.num_classes, self.on_epoch = config, data, num_classes, on_epoch
    self.max_parallel = max_parallel or config.sweep.max_parallel
    self.checkpointer = checkpointer

  def __call__(self, settings, first_trial):
    config, k = self.config, self.config.sweep.seeds
    configs = [space.with_overrides(config, {**setting, 'seed': config.seed + s})
               for setting in settings for s in range(k)]
    trial_ids = [first_trial + j for j in range(len(settings)) for _ in range(k)]
    results = engine.train_trials(configs, trial_ids, self.data, self.num_classes, config.seed,
                                  self.max_parallel, self.on_epoch, self.checkpointer)
    if k == 1:
      return results
    return [aggregate(results[j * k:(j + 1) * k]) for j in range(len(settings))]


def mean_spread(values):
  """Mean, sample standard deviation and the half-width of a Student-t 95% interval."""
  values = np.asarray(values, np.float64)
  mean = float(values.mean())
  if len(values) < 2:
    return mean, float('nan'), float('nan')
  std = float(values.std(ddof=1))
  from scipy import stats  # pylint: disable=import-outside-toplevel  # As in quasirandom_u.
  return mean, std, float(stats.t.ppf(0.975, len(values) - 1) * std / math.sqrt(len(values)))


def aggregate(replicates):
  """One result for a setting trained with k seeds: metrics are means over the seeds (a setting
  with a diverged seed is reported diverged: its mean would hide it), plus `<metric>_std`,
  `<metric>_ci95` (half-width), the per-seed values and the mean learning curve."""
  result = dict(replicates[0])
  for metric in METRICS:
    values = [r[metric] for r in replicates]
    result[metric], result[f'{metric}_std'], result[f'{metric}_ci95'] = mean_spread(values)
    result[f'{metric}_per_seed'] = values
  result['seeds'] = len(replicates)
  result['seconds'] = sum(r['seconds'] for r in replicates)
  if any(r['status'] == 'diverged' for r in replicates):
    result['status'] = 'diverged'
    result['diverged_epoch'] = min(r['diverged_epoch'] for r in replicates if r['diverged_epoch'])
  result['history'] = [
      {key: (row[key] if key == 'epoch' else float(np.mean([r['history'][e][key]
                                                            for r in replicates])))
       for key in row} for e, row in enumerate(replicates[0]['history'])]
  return result
