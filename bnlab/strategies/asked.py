"""sweep.ask='slot': TPE or GP asked for one trial each time a slot frees, at every epoch boundary.

With sweep.ask='batch' (the default) tpe and gp ask sweep.<name>.batch_size trials, train them
together and learn from the batch once all of it has stopped. With 'slot' the sampler learns
after every epoch instead: a population of batch_size slots trains (bnlab.strategies.slots), and
whenever a trial stops (finished, diverged, or pruned by sweep.pruner) the sampler is told its
result, with its value at every epoch (what TPE ranks pruned trials by), and asked for the trial
that takes the slot at the next epoch, in place, without a recompile.

A slot's program fixes the fields that shape it (widths, batch size, the norm: those outside
member.DYNAMIC_FIELDS). Each combination of their values is one bucket with its own slots and an
equal share of sweep.num_trials, trained one after another; the sampler is asked for the other
fields only (it sees every bucket's results: what it learns about the learning rate in the first
bucket carries over). So a program-shaping field takes choice(...) or int_uniform(...).

Resume: every ask and tell gets a sequence number (kept in the record's extras, and in the
checkpoint for running trials). A rerun replays them in order on a fresh sampler with the same
seed and checks that each ask returns the setting it returned before; a sampler that asks
otherwise (another Optuna) stops the run with one line rather than mix two searches.
"""

import dataclasses
import itertools
import json
from typing import Any, Callable

import ml_collections
import numpy as np

from bnlab import member
from bnlab import pareto
from bnlab import records
from bnlab import space
from bnlab import validate
from bnlab.strategies import base
from bnlab.strategies import pruning
from bnlab.strategies import sampling
from bnlab.strategies import slots

ASKS = ('batch', 'slot')
ASKING = ('tpe', 'gp')  # The strategies that ask a sampler.
# ask(study, specs, count) -> (Optuna trials, settings): tpe._ask and gp._ask.
AskFn = Callable[[Any, dict[str, space.Spec], int], tuple[list, list[dict[str, Any]]]]


def static_specs(specs: dict[str, space.Spec]) -> dict[str, space.Spec]:
  """The swept fields that shape the compiled program."""
  return {f: s for f, s in specs.items() if f not in member.DYNAMIC_FIELDS}


def _values(spec: space.Spec) -> list[Any]:
  if spec.kind == 'int_uniform':
    return list(range(spec.args[0], spec.args[1] + 1))
  return list(spec.args)


def combinations(specs: dict[str, space.Spec]) -> list[dict[str, Any]]:
  """Every combination of the program-shaping fields' values: one bucket each."""
  static = static_specs(specs)
  return [dict(zip(static, values))
          for values in itertools.product(*(_values(s) for s in static.values()))]


def check(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None:
  """sweep.ask: a known mode; 'slot' on a strategy that asks, one seed, discrete program-shaping
  fields, and a trial for each of their combinations."""
  sweep = config.sweep
  validate.choice(config, 'sweep.ask', ASKS)
  if sweep.ask == 'batch':
    return
  if sweep.strategy not in ASKING:
    raise records.ConfigError(f"sweep.ask='slot': sweep.strategy={sweep.strategy!r} asks no "
                              f'sampler; slot asks work with {", ".join(ASKING)}')
  base.single_seed(config)
  static = static_specs(specs)
  for field, spec in static.items():
    if spec.condition is not None:
      raise records.ConfigError(
          f"sweep.space.{field}: with sweep.ask='slot' a field that shapes the program takes no "
          f'`if {spec.condition.text}` (each of its values trains in its own slots)')
    if spec.kind not in ('choice', 'int_uniform'):
      raise records.ConfigError(
          f"sweep.space.{field}={spec.kind}(...): with sweep.ask='slot' a field that shapes the "
          'program takes choice(...) or int_uniform(...) (each value trains in its own slots)')
  count = int(np.prod([len(_values(s)) for s in static.values()]))
  if count > sweep.num_trials:
    raise records.ConfigError(
        f"sweep.num_trials={sweep.num_trials}: sweep.ask='slot' trains each of the {count} "
        f'combinations of {", ".join(static)} in its own slots; give it at least {count} trials')


def tell(study: Any, trial: Any, record: records.TrialRecord,
         config: ml_collections.ConfigDict, curve: bool = True) -> None:
  """One stopped trial back to the sampler: (with `curve`) its value at every epoch, then its
  outcome: its value at the epoch sweep.select ranks by (with sweep.objectives, one value per
  objective), else PRUNED or FAIL."""
  import optuna  # pylint: disable=import-outside-toplevel  # Imported by the study already.
  metric = config.sweep.metric
  record = records.with_best_epoch(record, metric, config.sweep.mode, config.sweep.select)
  objectives = pareto.parse(config.sweep.objectives)
  if curve and not objectives and record.status != records.DIVERGED:  # Optuna: one objective.
    for row in record.history:
      if np.isfinite(row.get(metric, np.nan)):
        trial.report(float(row[metric]), int(row['epoch']))
  values = [record.value(o.metric) for o in objectives]
  if record.status == records.PRUNED:  # Stopped by sweep.pruner: Optuna's own state for it.
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
  elif objectives and record.status != records.DIVERGED and np.isfinite(values).all():
    study.tell(trial, values)  # Optuna's multi-objective TPE: one value per direction.
  elif not objectives and record.scored(metric):
    study.tell(trial, record.value(metric))
  else:
    study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _in_bucket(spec: space.Spec, static: dict[str, Any]) -> space.Spec:
  """`spec` whose condition, if it reads a program-shaping field, reads the bucket's value."""
  if spec.condition is None or spec.condition.field not in static:
    return spec
  return dataclasses.replace(spec, condition=dataclasses.replace(
      spec.condition, base=static[spec.condition.field], bound=True))


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
  return json.dumps(records.jsonable(a), sort_keys=True) == json.dumps(
      records.jsonable(b), sort_keys=True)


class Asker:
  """The sampler behind a slots.Run: asks fill `settings`, every ask and tell numbered."""

  def __init__(self, context: base.Context, study: Any, ask: AskFn,
               statics: list[dict[str, Any]], settings: list[dict[str, Any] | None]):
    self.context, self.study, self._ask, self.statics = context, study, ask, statics
    self.settings = settings
    self.dynamic = {f: s for f, s in context.specs.items() if f not in statics[0]}
    self.pending: dict[int, tuple[Any, int]] = {}  # Running trial -> (Optuna trial, ask seq).
    self.seq = 0

  def config(self, group: int) -> ml_collections.ConfigDict:
    """The config a bucket's programs are built from: its static values, checked."""
    return self.context.trial_config({**self.statics[group], 'seed': self.context.config.seed})

  def ask(self, group: int, indices: list[int]) -> None:
    specs = {f: _in_bucket(s, self.statics[group]) for f, s in self.dynamic.items()}
    for i in indices:
      asked, settings = self._ask(self.study, specs, 1)
      self.settings[i] = {**self.statics[group], **settings[0]}
      self.pending[i] = (asked[0], self.seq)
      self.seq += 1

  def tell(self, index: int, record: records.TrialRecord) -> None:
    trial, asked_at = self.pending.pop(index)
    record.extras.update(ask_seq=asked_at, tell_seq=self.seq)
    self.seq += 1
    tell(self.study, trial, record, self.context.config)

  def running(self, indices: list[int]) -> dict[str, Any]:
    """What a checkpoint keeps of the running trials: when each was asked, and its setting."""
    return {str(i): [self.pending[i][1], records.jsonable(self.settings[i])] for i in indices}

  def replay(self, group: int, done: dict[int, records.TrialRecord],
             running: dict[str, Any]) -> None:
    """Asks and tells again, in their order, what a bucket asked and told before a restart."""
    events = [(r.extras['ask_seq'], i, r.setting) for i, r in done.items()]
    events += [(r.extras['tell_seq'], i, r) for i, r in done.items()]
    events += [(seq, int(i), setting) for i, (seq, setting) in running.items()]
    for seq, index, what in sorted(events, key=lambda e: e[0]):
      if seq != self.seq:
        raise records.ConfigError(f'sweep.ask=slot: the checkpoint misses ask or tell {self.seq}'
                                  ' of the sampler; cannot resume this sweep')
      if isinstance(what, records.TrialRecord):
        self.tell(index, what)
        continue
      self.ask(group, [index])
      if not _same(self.settings[index], what):
        raise records.ConfigError(
            f'sweep.ask=slot: on resume the sampler asked {self.settings[index]} for trial '
            f'{index} where it had asked {what} (another Optuna version?); cannot resume this '
            'sweep: train it into a new workdir')


def run(context: base.Context, study: Any, ask: AskFn, slots_per_bucket: int
        ) -> list[records.TrialRecord]:
  """Trains sweep.num_trials trials asked one per freed slot, bucket after bucket."""
  config = context.config
  statics = combinations(context.specs)
  total = config.sweep.num_trials
  bounds = np.cumsum([0] + sampling.split(total, len(statics)))
  groups = [np.arange(bounds[g], bounds[g + 1]) for g in range(len(statics))]
  settings: list[dict[str, Any] | None] = [None] * total
  asker = Asker(context, study, ask, statics, settings)

  def configs(indices):
    return [context.trial_config({**settings[i], 'seed': config.seed}) for i in indices]
  return slots.train(slots.Run(
      settings, list(range(total)), configs, context.data, context.num_classes, config.seed,
      min(slots_per_bucket, context.max_parallel), pruning.from_config(config),
      config.sweep.metric, config.sweep.mode, context.on_epoch, context.checkpointer, asker,
      config.train.patience), groups)
