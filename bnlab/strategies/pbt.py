"""Population based training inside one program (Jaderberg et al. 2017, truncation selection).

Every sweep.pbt.interval epochs the bottom sweep.pbt.quantile of each population copies the
parameters, batch_stats and optimizer state of a random member of the top quantile (a gather on
the member axis, no disk) and explores: each of its dynamic hyperparameters is resampled from its
spec with probability sweep.pbt.resample, else multiplied by 0.8 or 1.2 in the spec's own scale
(1 - x for one_minus_log_uniform), clipped to the spec's range. Members of different buckets
(e.g. widths) cannot copy each other: each bucket chunk is its own population.

Member i stays trial i: its history records the hyperparameters it trained with at each epoch
(its schedule), and its setting is the values it ended with.
"""

import ml_collections
import numpy as np

from bnlab import member
from bnlab import population as population_lib
from bnlab import records
from bnlab import space
from bnlab import validate
from bnlab.strategies import base
from bnlab.strategies import random_search

SEARCHES = True
plan = random_search.plan
# init_scale acts only at init: changing it mid-training would change nothing.
EXPLORED = tuple(f for f in member.DYNAMIC_FIELDS if f != 'model.init_scale')
FACTORS = (0.8, 1.2)


def check(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None:
  validate.positive(config, 'sweep.pbt.interval')
  validate.fraction(config, 'sweep.pbt.quantile', upper=0.5)
  validate.fraction(config, 'sweep.pbt.resample', closed_low=True)
  if not any(f in EXPLORED for f in specs):
    raise records.ConfigError('sweep.space: sweep.strategy=\'pbt\' needs a swept dynamic '
                              'hyperparameter, one of: ' + ', '.join(EXPLORED))
  base.single_seed(config)


def exploit(scores: np.ndarray, quantile: float, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
  """Truncation selection: (source index per member, copied mask). The bottom floor(n * quantile)
  by `scores` (higher is better) each copy a random member of the top as many; others keep."""
  n = len(scores)
  count = int(n * quantile)
  source, copied = np.arange(n), np.zeros(n, bool)
  if count:
    order = np.argsort(-np.asarray(scores), kind='stable')
    source[order[n - count:]] = rng.choice(order[:count], size=count)
    copied[order[n - count:]] = True
  return source, copied


def perturb(spec: space.Spec, value: float, rng: np.random.Generator, resample: float) -> float:
  """A new value near `value` (x0.8 or x1.2 in the spec's scale) or, with chance `resample`, a
  fresh draw from the spec; never outside the spec's range."""
  if rng.random() < resample:
    return spec.value(rng.random())
  if not spec.is_numeric:  # A numeric choice: step to a neighbouring value.
    i = int(np.argmin([abs(a - value) for a in spec.args]))
    return spec.args[int(np.clip(i + rng.choice((-1, 1)), 0, len(spec.args) - 1))]
  factor = rng.choice(FACTORS)
  lo, hi = spec.args
  if spec.scale == 'one_minus_log':
    return 1 - float(np.clip((1 - value) * factor, 1 - hi, 1 - lo))
  value = float(np.clip(value * factor, lo, hi))
  return int(round(value)) if spec.kind == 'int_uniform' else value


def explore(values: dict[str, np.ndarray], specs: dict[str, space.Spec], copied: np.ndarray,
            rng: np.random.Generator, resample: float) -> dict[str, np.ndarray]:
  """`values` {field: [n]} with every copied member's fields perturbed (a new dict)."""
  values = {f: np.array(v, dtype=object) for f, v in values.items()}
  for k in np.flatnonzero(copied):
    for field in values:
      values[field][k] = perturb(specs[field], values[field][k], rng, resample)
  return values


def _set_device_hparams(population, values):
  hparams = population.hparams()
  for field, column in values.items():
    section, key = field.split('.')
    hparams[section][key][:population.size] = np.asarray(column, np.float64)
  population.set_hparams(hparams)


def _values(population, fields):
  """{field: [size]} the explored values the trials train with now."""
  return {f: [population.settings[k][f] for k in range(population.size)] for f in fields}


def exploit_and_explore(population: population_lib.Population, fields: list[str],
                        config: ml_collections.ConfigDict, specs: dict[str, space.Spec],
                        rng: np.random.Generator) -> None:
  """One PBT step on one population: copy state bottom <- top, perturb the copies' settings."""
  knobs = config.sweep.pbt
  source, copied = exploit(population.scores(config.sweep.metric, config.sweep.mode),
                           knobs.quantile, rng)
  population.copy_state(np.concatenate([source, np.arange(population.size,
                                                          len(population.trials))]))
  values = explore({f: np.asarray(v, dtype=object)[source]
                    for f, v in _values(population, fields).items()},
                   specs, copied, rng, knobs.resample)
  for k in range(population.size):
    population.settings[k].update({f: values[f][k] for f in fields})
  _set_device_hparams(population, values)


def _history_columns(population, fields):
  """The explored values as [N] float64 history columns (padding copies the first member)."""
  pad = len(population.trials) - population.size
  return {f: np.asarray(list(v) + [v[0]] * pad, np.float64)
          for f, v in _values(population, fields).items()}


def run(context: base.Context) -> list[records.TrialRecord]:
  """Random initial settings trained with PBT; each trial's record holds its final values.

  With a checkpointer each population is saved as 'pbt-<its trials>' on the
  train.checkpoint_every cadence, after that epoch's exploit step, with its explored values
  (the slots' settings); the exploit RNG comes from (seed, epoch, population), so a rerun that
  restores the populations goes on exactly as they would have.
  """
  config, specs = context.config, context.specs
  settings = space.random_trials(specs, config.seed, config.sweep.num_trials)
  populations = context.populations(settings)
  fields = [f for f in specs if f in EXPLORED]
  keys = [context.checkpoint_key('pbt', p) if context.checkpointer else None
          for p in populations]
  for population, key in zip(populations, keys):
    if key:
      context.restore(population, key)
  for epoch in range(1, config.train.epochs + 1):
    for g, population in enumerate(populations):
      if population.epoch >= epoch:  # Restored past this epoch.
        continue
      population.run_epoch(context.data, context.on_epoch, _history_columns(population, fields))
      if epoch % config.sweep.pbt.interval == 0 and epoch < config.train.epochs:
        rng = np.random.default_rng([config.seed, epoch, g])
        exploit_and_explore(population, fields, config, specs, rng)
      if keys[g]:
        context.save_due(population, keys[g], {})
  done = [r for p in populations for r in p.records(context.data, range(p.size))]
  return sorted(done, key=lambda r: r.trial)
