"""Population based training inside one program (Jaderberg et al. 2017, truncation selection).

Every sweep.pbt.interval epochs the bottom sweep.pbt.quantile of each population copies the
parameters, batch_stats and optimizer state of a random member of the top quantile (a gather on
the member axis, no disk) and explores: each of its dynamic hyperparameters is resampled from its
spec with probability sweep.pbt.resample, else multiplied by 0.8 or 1.2 in the spec's own scale
(1 - x for one_minus_log_uniform), clipped to the spec's range. Members of different buckets
(e.g. widths) cannot copy each other: each bucket chunk is its own population.

Member i stays trial i: its history records the hyperparameters it trained with at each epoch
(its schedule), and its setting is the values it ended with. Its lineage says whose weights it
trains on: `extras['lineage']` lists [epoch, source trial] for each exploit step that replaced
its state (after that epoch, with that trial's state of then), and each history row names the
trial it copied at the end of that epoch in `copied_from` (None where it kept its own). A member
that blew up keeps the epoch in `diverged_epoch` even when a copy then replaced it (its status
is then ok): the first epoch any of its states blew up in.
"""

import ml_collections
import numpy as np

from bnlab import member
from bnlab import population as population_lib
from bnlab import records
from bnlab import space
from bnlab.strategies import base
from bnlab.strategies import random_search
from bnlab.strategies import sampling

SEARCHES = True
plan = random_search.plan
# init_scale acts only at init: changing it mid-training would change nothing.
EXPLORED = tuple(f for f in member.DYNAMIC_FIELDS if f != 'model.init_scale')
FACTORS = (0.8, 1.2)


def check(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None:
  if not any(f in EXPLORED for f in specs):
    raise records.ConfigError('sweep.space: sweep.strategy=\'pbt\' needs a swept dynamic '
                              'hyperparameter, one of: ' + ', '.join(EXPLORED))
  for field, spec in specs.items():
    if field in EXPLORED and spec.condition is not None:  # Explore perturbs every member's.
      raise records.ConfigError(f'sweep.space.{field}: sweep.strategy=\'pbt\' explores it in '
                                f'every member, so it takes no `if {spec.condition.text}`')
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
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """One PBT step on one population: copy state bottom <- top, perturb the copies' settings.
  Returns exploit's (source slot per slot, copied mask)."""
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
  return source, copied


def _history_columns(population, fields):
  """The explored values as [N] float64 history columns (padding copies the first member)."""
  pad = len(population.trials) - population.size
  return {f: np.asarray(list(v) + [v[0]] * pad, np.float64)
          for f, v in _values(population, fields).items()}


class Lineage:
  """Whose state each trial of one population took, and when its own blew up: plain data, saved
  with the population's checkpoint so that a resumed run reports the same lineage."""

  def __init__(self, saved: dict | None = None):
    saved = saved or {}
    self.copies = [list(c) for c in saved.get('copies', [])]  # [trial, epoch, source trial]
    self.diverged = {int(t): e for t, e in saved.get('diverged', [])}  # trial -> first epoch

  def to_json(self) -> dict:
    return {'copies': self.copies, 'diverged': sorted(self.diverged.items())}

  def note_diverged(self, population: population_lib.Population) -> None:
    """Keeps each member's divergence epoch (1-based) before a copy can overwrite its state."""
    for k, epoch in enumerate(population.diverged_epochs()[:population.size].tolist()):
      trial = int(population.trials[k])
      if epoch >= 0 and trial not in self.diverged:
        self.diverged[trial] = epoch + 1

  def note_copies(self, population: population_lib.Population, source: np.ndarray,
                  copied: np.ndarray) -> None:
    for k in np.flatnonzero(copied):
      self.copies.append([int(population.trials[k]), population.epoch,
                          int(population.trials[source[k]])])

  def annotate(self, record: records.TrialRecord) -> records.TrialRecord:
    """`record` with its lineage, each history row's `copied_from`, its first divergence."""
    lineage = [[epoch, source] for trial, epoch, source in self.copies if trial == record.trial]
    record.extras[records.LINEAGE] = lineage
    copied_at = dict(lineage)
    for row in record.history:
      row[records.COPIED_FROM] = copied_at.get(row['epoch'])
    first = self.diverged.get(record.trial)
    if first is not None and (record.diverged_epoch is None or first < record.diverged_epoch):
      record.diverged_epoch = first
    return record


def run(context: base.Context) -> list[records.TrialRecord]:
  """Random initial settings trained with PBT; each trial's record holds its final values.

  With a checkpointer each population is saved as 'pbt-<its trials>' on the
  train.checkpoint_every cadence, after that epoch's exploit step, with its explored values
  (the slots' settings) and its Lineage; the exploit RNG comes from (seed, epoch, population),
  so a rerun that restores the populations goes on exactly as they would have.
  """
  config, specs = context.config, context.specs
  settings = sampling.random(specs, config.seed, config.sweep.num_trials)
  populations = context.populations(settings)
  fields = [f for f in specs if f in EXPLORED]
  keys = [context.checkpoint_key('pbt', p) if context.checkpointer else None
          for p in populations]
  lineages = [Lineage(context.restore(p, key) if key else None)
              for p, key in zip(populations, keys)]
  for epoch in range(1, config.train.epochs + 1):
    for g, population in enumerate(populations):
      if population.epoch >= epoch:  # Restored past this epoch.
        continue
      population.run_epoch(context.data, context.on_epoch, _history_columns(population, fields))
      if epoch % config.sweep.pbt.interval == 0 and epoch < config.train.epochs:
        rng = np.random.default_rng([config.seed, epoch, g])
        lineages[g].note_diverged(population)
        lineages[g].note_copies(population,
                                *exploit_and_explore(population, fields, config, specs, rng))
      if keys[g]:
        context.save_due(population, keys[g], lineages[g].to_json())
  done = [lineage.annotate(r) for p, lineage in zip(populations, lineages)
          for r in p.records(context.data, range(p.size))]
  return sorted(done, key=lambda r: r.trial)
