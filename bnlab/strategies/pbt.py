"""Population based training inside one program (Jaderberg et al. 2017, truncation selection).

Every sweep.pbt_interval epochs the bottom sweep.pbt_quantile of each population copies the
parameters, batch_stats and optimizer state of a random member of the top quantile (a gather on
the member axis, no disk) and explores: each of its dynamic hyperparameters is resampled from its
spec with probability sweep.pbt_resample, else multiplied by 0.8 or 1.2 in the spec's own scale
(1 - x for one_minus_log_uniform), clipped to the spec's range. Members of different buckets
(e.g. widths) cannot copy each other: each bucket chunk is its own population.

Member i stays trial i: its history records the hyperparameters it trained with at each epoch
(its schedule), and its setting is the values it ended with.
"""

import dataclasses

import numpy as np

from bnlab import engine
from bnlab import space
from bnlab.strategies import populations
from bnlab.strategies import sampling

# init_scale acts only at init: changing it mid-training would change nothing.
EXPLORED = tuple(f for f in engine.DYNAMIC_FIELDS if f != 'model.init_scale')
FACTORS = (0.8, 1.2)


def exploit(scores, quantile, rng):
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


def perturb(spec, value, rng, resample):
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


def explore(values, specs, copied, rng, resample):
  """`values` {field: [n]} with every copied member's fields perturbed (a new dict)."""
  values = {f: np.array(v, dtype=object) for f, v in values.items()}
  for k in np.flatnonzero(copied):
    for field in values:
      values[field][k] = perturb(specs[field], values[field][k], rng, resample)
  return values


def _set_device_hparams(group, values):
  hparams = group.population.hparams()
  for field, column in values.items():
    section, key = field.split('.')
    array = np.array(hparams[section][key])
    array[:group.size] = np.asarray(column, np.float64)
    hparams[section][key] = array
  group.population.set_hparams(hparams)


def exploit_and_explore(group, values, config, specs, rng, data):
  """One PBT step on one group: copy state bottom <- top, perturb; returns the new values."""
  source, copied = exploit(populations.scores(group, config), config.sweep.pbt_quantile, rng)
  index = np.concatenate([source, np.arange(group.size, len(group.seconds))])  # Padding stays.
  group.population = dataclasses.replace(group.population.take(index, data),
                                         trials=group.population.trials)
  values = explore({f: np.asarray(v, dtype=object)[source] for f, v in values.items()},
                   specs, copied, rng, config.sweep.pbt_resample)
  _set_device_hparams(group, values)
  return values


def run(config, specs, data, num_classes, on_epoch=None, max_parallel=None, checkpointer=None):
  """Random initial settings trained with PBT; returns (final settings, results).

  With a `checkpointer` each group is saved as 'pbt-<its trials>' on the train.checkpoint_every
  cadence, after that epoch's exploit step, with its explored values; the exploit RNG comes from
  (seed, epoch, group), so a rerun that restores the groups goes on exactly as they would have.
  """
  settings = sampling.random_trials(specs, config.seed, config.sweep.num_trials)
  configs = [space.with_overrides(config, s) for s in settings]
  groups = populations.create(configs, data, num_classes, config.seed,
                              max_parallel or config.sweep.max_parallel)
  fields = [f for f in specs if f in EXPLORED]
  # Host copy of each group's explored values, member-aligned: the source of truth for history.
  values = [{f: [settings[t][f] for t in g.population.trials[:g.size]] for f in fields}
            for g in groups]
  keys = [populations.name('pbt', g, configs, config.seed) for g in groups] if checkpointer else []
  for g, key in enumerate(keys):
    restored = populations.restore(groups[g], checkpointer, key)
    values[g] = restored['values'] if restored else values[g]
  for epoch in range(1, config.train.epochs + 1):
    for g, group in enumerate(groups):
      if group.population.epoch >= epoch:  # Restored past this epoch.
        continue
      pad = len(group.seconds) - group.size
      extra = {f: np.asarray(list(v) + [v[0]] * pad, np.float64) for f, v in values[g].items()}
      populations.run_epoch(group, data, on_epoch, extra)
      if epoch % config.sweep.pbt_interval == 0 and epoch < config.train.epochs:
        rng = np.random.default_rng([config.seed, epoch, g])
        values[g] = exploit_and_explore(group, values[g], config, specs, rng, data)
      if checkpointer and checkpointer.due(epoch, config.train.epochs):
        populations.save(group, checkpointer, keys[g], {'values': _jsonable(values[g])})
  results, final = [], [dict(s) for s in settings]
  for g, group in enumerate(groups):
    results += populations.results(group, data, range(group.size))
    for k, trial in enumerate(group.population.trials[:group.size]):
      final[trial].update({f: values[g][f][k] for f in fields})
  results.sort(key=lambda r: r['trial'])
  return final, results


def _jsonable(values):
  """{field: [n]} as plain Python numbers (a numpy scalar would not survive JSON)."""
  return {f: [v.item() if isinstance(v, np.generic) else v for v in column]
          for f, column in values.items()}
