"""What every strategy is given (`Context`) and what it provides (`Strategy`, the protocol).

A strategy decides which settings train and when; the population loop trains whatever it is
given. A strategy is a module with four names, registered in bnlab.strategies.STRATEGIES:

    SEARCHES: bool                      refuses an empty space (grid and random train it as it is)
    check(config, specs) -> None        its own config section, sweep.<name>.*: ConfigError
    plan(config, specs) -> Plan         how many trials and trial-epochs it will train
    run(context) -> list[TrialRecord]   trains the sweep; record i is trial i

`run` is a deterministic function of (config, the results so far), with its own state in plain
Python data, so a resumed run replays it: lists of trials resume through `Context.train`'s chunk
journal; strategies that reshape populations checkpoint them under `Context.checkpoint_key`.
"""

import dataclasses
import math
from typing import Any, Callable, NamedTuple, Protocol, Sequence

import ml_collections
import numpy as np

from bnlab import checkpoint
from bnlab import costs
from bnlab import member
from bnlab import population as population_lib
from bnlab import records
from bnlab import space
from bnlab.strategies import pruning
from bnlab.strategies import sampling
from bnlab.strategies import slots


class Plan(NamedTuple):
  """What a strategy will train, known before it starts: for the log and the progress bar."""
  trials: int
  trial_epochs: int


class Strategy(Protocol):
  """The module-level names of a strategy (see the module doc)."""
  SEARCHES: bool

  # Raises ConfigError on what its section and the space ask together (each field's own bounds
  # are prechecks.BOUNDS', checked before).
  def check(self, config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None: ...

  def plan(self, config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> Plan: ...

  def run(self, context: 'Context') -> list[records.TrialRecord]: ...


@dataclasses.dataclass
class Context:
  """A sweep as a strategy sees it: config and space, the data, and the population loop."""
  config: ml_collections.ConfigDict
  specs: dict[str, space.Spec]
  data: dict[str, Any]
  num_classes: int
  max_parallel: int
  on_epoch: population_lib.OnEpoch | None = None
  checkpointer: checkpoint.SweepCheckpointer | None = None
  # Checks one trial's config before it is trained (bnlab.checks.check_trial): a combination
  # of values that is invalid together stops the sweep with one line before its compile.
  check_trial: Callable[[ml_collections.ConfigDict], None] | None = None

  def trial_config(self, setting: dict[str, Any]) -> ml_collections.ConfigDict:
    """The config of the trial with `setting`, checked."""
    try:
      config = space.with_overrides(self.config, setting)
    except TypeError as e:
      raise records.ConfigError(f'sweep.space: {e}') from None
    if self.check_trial:
      self.check_trial(config)
    return config

  def train(self, settings: Sequence[dict[str, Any]],
            first_trial: int) -> list[records.TrialRecord]:
    """Trains `settings` as trials first_trial, first_trial + 1, ... to their last epoch.

    `settings` may be a sampling.Trials: each chunk's settings and configs are then made when
    the chunk trains. With sweep.seeds = k each setting becomes k members whose configs differ
    only by `seed` (config.seed + s): they share a bucket and a program, each with its own init
    and data order, and the setting's record is their mean (`aggregate`). With
    sweep.objectives, each record also carries its costs (`with_costs`).
    """
    return self.with_costs(self._train(settings, first_trial))

  def with_costs(self, done: list[records.TrialRecord]) -> list[records.TrialRecord]:
    """`done` with each trial's costs (bnlab.costs) where sweep.objectives may name them."""
    if not self.config.sweep.objectives:
      return done
    shape = tuple(self.data['x_train'].shape[1:])
    # Settings that trained are checked already: their configs only, no check_trial each.
    return [costs.with_costs(r, costs.model_costs(space.with_overrides(self.config, r.setting),
                                                  self.num_classes, shape)) for r in done]

  def _train(self, settings, first_trial):
    config, k = self.config, self.config.sweep.seeds
    pruner = pruning.from_config(config)
    if pruner or config.train.patience:  # One seed (pruning.check): trial j is setting j.
      return slots.train(slots.Run(
          settings, [first_trial + j for j in range(len(settings))],
          lambda indices: [self.trial_config({**settings[i], 'seed': config.seed})
                           for i in indices],
          self.data, self.num_classes, config.seed, self.max_parallel, pruner,
          config.sweep.metric, config.sweep.mode, self.on_epoch, self.checkpointer,
          patience=config.train.patience), self.buckets(settings))
    groups = [(bucket[:, None] * k + np.arange(k)).reshape(-1)
              for bucket in self.buckets(settings)]

    def chunk(members):  # Member m is setting m // k with seed config.seed + m % k.
      chunk_settings = sampling.take(settings, [m // k for m in members])
      configs = [self.trial_config({**setting, 'seed': config.seed + m % k})
                 for setting, m in zip(chunk_settings, members)]
      return configs, chunk_settings, [first_trial + m // k for m in members]
    done = population_lib.train_chunks(
        population_lib.group_chunks(groups, self.max_parallel), chunk, len(settings) * k,
        self.data, self.num_classes, config.seed, self.on_epoch, self.checkpointer)
    if k == 1:
      return done
    return [aggregate(done[j * k:(j + 1) * k]) for j in range(len(settings))]

  def buckets(self, settings: Sequence[dict[str, Any]]) -> list[np.ndarray]:
    """The indices of `settings` that share a compiled program (member.buckets' groups, in the
    same order), each bucket's first setting checked: a combination of values that is invalid
    together stops the sweep before anything compiles. Reads the shape-deciding fields only, in
    whole columns (sampling.static_codes), and makes one config per distinct combination."""
    codes = sampling.static_codes(settings, member.DYNAMIC_FIELDS)
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    by_static = {}  # Combinations of equal static config (e.g. 1 and 1.0) share a program.
    for code in np.argsort(first, kind='stable'):
      config = self.trial_config({**settings[int(first[code])], 'seed': self.config.seed})
      by_static.setdefault(member.static_config(config), []).append(code)
    return [np.flatnonzero(np.isin(inverse.reshape(-1), codes)) for codes in by_static.values()]

  def populations(self, settings: Sequence[dict[str, Any]],
                  first_trial: int = 0) -> list[population_lib.Population]:
    """One population per chunk of each bucket of `settings` (trials first_trial, ...): for
    strategies that change populations between epochs."""
    out = []
    for members, size in population_lib.group_chunks(self.buckets(settings), self.max_parallel):
      chunk_settings = sampling.take(settings, members)
      out.append(population_lib.Population.create(
          [self.trial_config(s) for s in chunk_settings], chunk_settings,
          [first_trial + i for i in members], self.data, self.num_classes, self.config.seed,
          size))
    return out

  def checkpoint_key(self, prefix: str, population: population_lib.Population) -> str:
    """A checkpoint name fixed by `prefix` and the population's members (configs, trial ids):
    a rerun of the same sweep finds it again."""
    configs = [self.trial_config(s) for s in population.settings]
    trials = [int(t) for t in population.trials]
    return f'{prefix}-{checkpoint.chunk_key(configs, trials, self.config.seed)}'

  def restore(self, population: population_lib.Population, key: str) -> dict | None:
    """Continues `population` from its checkpoint `key` if there is one (else None): the
    caller's extra state saved with it."""
    return population.restore(self.checkpointer, key) if self.checkpointer else None

  def save_due(self, population: population_lib.Population, key: str, extra: dict,
               force: bool = False) -> None:
    """Checkpoints `population` on the train.checkpoint_every cadence (or now, with `force`)."""
    if self.checkpointer and (force or self.checkpointer.due(population.epoch,
                                                              population.epochs)):
      population.save(self.checkpointer, key, extra)


def single_seed(config: ml_collections.ConfigDict) -> None:
  """Strategies that reshape populations train each setting with one seed: a setting's seeds
  would have to be ranked, pruned and copied together."""
  if config.sweep.seeds != 1:
    raise records.ConfigError(f'sweep.seeds={config.sweep.seeds!r}: sweep.strategy='
                              f'{config.sweep.strategy!r} takes seeds=1')


def mean_spread(values: list[float]) -> tuple[float, float, float]:
  """Mean, sample standard deviation and the half-width of a Student-t 95% interval."""
  values = np.asarray(values, np.float64)
  mean = float(values.mean())
  if len(values) < 2:
    return mean, float('nan'), float('nan')
  std = float(values.std(ddof=1))
  from scipy import stats  # pylint: disable=import-outside-toplevel  # Only seeds > 1 pay.
  return mean, std, float(stats.t.ppf(0.975, len(values) - 1) * std / math.sqrt(len(values)))


def aggregate(replicates: list[records.TrialRecord]) -> records.TrialRecord:
  """One record for a setting trained with k seeds: metrics are means over the seeds (a setting
  with a diverged seed is reported diverged: its mean would hide it), plus `<metric>_std` and
  `<metric>_ci95` (half-width), the per-seed values in extras, and the mean learning curve."""
  first = replicates[0]
  metrics, extras = dict(first.metrics), {'seeds': len(replicates)}
  for metric in records.METRICS:
    values = [r.value(metric) for r in replicates]
    metrics[metric], metrics[f'{metric}_std'], metrics[f'{metric}_ci95'] = mean_spread(values)
    extras[f'{metric}_per_seed'] = values
  diverged = [r.diverged_epoch for r in replicates if r.status == records.DIVERGED]
  history = [{key: (row[key] if key == 'epoch' else
                    float(np.mean([r.history[e][key] for r in replicates])))
              for key in row} for e, row in enumerate(first.history)]
  return dataclasses.replace(
      first, status=records.DIVERGED if diverged else first.status, metrics=metrics,
      seconds=sum(r.seconds for r in replicates), diverged_epoch=min(diverged) if diverged
      else first.diverged_epoch, history=history, extras=extras)
