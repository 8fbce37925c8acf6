"""The one population loop: N members of a bucket, trained an epoch at a time, with their record.

A `Population` is the stacked state of N members plus everything the host knows about them: the
trial and setting each slot carries, the per-epoch history, each member's share of the wall time,
and when its trial started. Every strategy drives populations through this one class: lists of
trials (`train_trials`, chunked and journaled), successive halving (`take` shrinks a population),
PBT (`copy_state` and `set_hparams` between epochs), and strategies that retire trials and start
new ones in their slots (`refill`, no recompile). Slots [0, size) are trials; the rest pad the
program to `programs.padded_size` and are dropped from every result.
"""

import dataclasses
import time
from typing import Any, Callable, Iterable, Sequence

from absl import logging
import ml_collections
import numpy as np

from bnlab import checkpoint
from bnlab import member
from bnlab import parallel
from bnlab import programs as programs_lib
from bnlab import records

OnEpoch = Callable[['Population', dict[str, np.ndarray], float], None]
# A chunk's indices -> its (configs, settings, trial ids): made when the chunk is trained.
MakeChunk = Callable[[list[int]], tuple[list[ml_collections.ConfigDict], list[dict[str, Any]],
                                        list[int]]]


@dataclasses.dataclass
class Population:
  """N members of one bucket trained side by side; see the module doc."""
  spec: member.MemberSpec
  programs: programs_lib.Programs
  state: member.MemberState  # Every leaf [N, ...], split over the devices.
  trials: np.ndarray  # [N] the trial id in each slot.
  settings: list[dict[str, Any]]  # [N] each slot's swept values (PBT updates them).
  size: int  # Slots [0, size) are trials; the rest are padding copies.
  seed: int
  member_seeds: np.ndarray | None = None  # [N] own init/data seeds, or None: all use `seed`.
  epoch: int = 0  # Epochs the population has trained.
  history: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)  # {name: [N]}
  seconds: np.ndarray | None = None  # [N] each member's share of the wall time so far.
  started: np.ndarray | None = None  # [N] the population epoch each slot's trial started at.
  # Each member's data order follows its own trial's epochs (refilled slots), not the
  # population's: a trial trains alike whenever it starts.
  own_epochs: bool = False

  @classmethod
  def create(cls, configs: list[ml_collections.ConfigDict], settings: list[dict[str, Any]],
             trials: list[int], data: dict[str, Any], num_classes: int, seed: int,
             size: int | None = None, member_seeds: list[int] | None = None,
             own_epochs: bool = False) -> 'Population':
    """Initializes one member per config (all of one bucket), each from the shared init key.

    `member_seeds` ([N] ints) gives each member its own init and data order instead;
    `own_epochs` keys each member's data order by its trial's epoch (for `refill`).
    """
    start = time.perf_counter()
    spec = member.make_spec(member.static_config(configs[0]), num_classes,
                            data['x_train'].shape[0])
    own = member_seeds is not None
    mesh = parallel.member_mesh()
    programs = programs_lib.compile_programs(spec, len(configs), programs_lib.data_shapes(data),
                                             own, mesh, own_epochs)
    member_seeds = np.asarray(member_seeds, np.int32) if own else None
    hparams = parallel.put(member.dynamic_hparams(configs), parallel.member_sharding(mesh))
    # The whole placed x_train, sliced inside the program: slicing it here would compile small
    # eager programs (BENCHMARKS.md, engine change 14).
    x_train = parallel.put(data['x_train'], parallel.replicated(mesh))
    state = programs.init(hparams, programs_lib.placed_seeds(seed, member_seeds, mesh), x_train)
    n = len(configs)
    return cls(spec, programs, state, np.asarray(trials), [dict(s) for s in settings],
               n if size is None else size, seed, member_seeds,
               seconds=np.full(n, (time.perf_counter() - start) / n), started=np.zeros(n, int),
               own_epochs=own_epochs)

  @property
  def epochs(self) -> int:
    """The epochs each trial trains in all (train.epochs)."""
    return self.spec.static.train.epochs

  def run_epoch(self, data: dict[str, Any], on_epoch: OnEpoch | None = None,
                extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Trains every member one epoch; records its metrics (and `extra` [N] columns) in the
    history and returns them as host [N] arrays."""
    start = time.perf_counter()
    mesh = parallel.member_mesh()
    data = parallel.put(data, parallel.replicated(mesh))
    seed = programs_lib.placed_seeds(self.seed, self.member_seeds, mesh)
    if self.own_epochs:
      epoch = parallel.put(np.asarray(self.epoch - self.started, np.int32),
                           parallel.member_sharding(mesh))
    else:
      epoch = parallel.put(np.int32(self.epoch), parallel.replicated(mesh))
    self.state, metrics = self.programs.epoch(
        self.state, data['x_train'], data['y_train'], data['x_val'], data['y_val'], seed, epoch)
    metrics = parallel.to_host(metrics)
    self.epoch += 1
    seconds = time.perf_counter() - start
    self.seconds = self.seconds + seconds / len(self.trials)
    self.history.append({**metrics, **(extra or {})})
    if on_epoch:
      on_epoch(self, metrics, seconds)
    return metrics

  def evaluate_test(self, data: dict[str, Any]) -> dict[str, np.ndarray]:
    """Test loss and accuracy of every member ([N] host arrays), for reporting only."""
    data = parallel.put(data, parallel.replicated(parallel.member_mesh()))
    return parallel.to_host(self.programs.test(self.state, data['x_train'], data['x_test'],
                                               data['y_test']))

  def scores(self, metric: str, mode: str) -> np.ndarray:
    """The trials' latest `metric` turned so that higher is better; diverged or NaN is -inf."""
    last = self.history[-1]
    value = records.oriented(np.asarray(last[metric][:self.size], np.float64), mode)
    bad = np.asarray(last['diverged'][:self.size]) | ~np.isfinite(value)
    return np.where(bad, -np.inf, value)

  def records(self, data: dict[str, Any], slots: list[int] | range,
              status: str | None = None) -> list[records.TrialRecord]:
    """The TrialRecords of `slots`, test set scored now; `status` replaces ok (never diverged)."""
    start = time.perf_counter()
    test = self.evaluate_test(data)
    self.seconds = self.seconds + (time.perf_counter() - start) / len(self.trials)
    diverged_epochs = self.diverged_epochs()
    out = []
    for k in slots:
      record = self._record(k, test, int(diverged_epochs[k]))
      if status and record.status == records.OK:
        record.status = status
      out.append(record)
    return out

  def diverged_epochs(self) -> np.ndarray:
    """[N] host ints: the 0-based population epoch each member's state blew up in, -1 if never."""
    epochs = np.asarray(parallel.to_host(self.state.diverged_epoch))
    if self.own_epochs:  # The program counted each trial's own epochs.
      return np.where(epochs >= 0, epochs + self.started, epochs)
    return epochs

  def _record(self, k, test, diverged_epoch):
    """Slot k's record: its history since its trial started; a diverged one has no metrics."""
    first = int(self.started[k])
    rows = [{'epoch': e + 1, **{m: float(v[k]) for m, v in h.items() if m != 'diverged'}}
            for e, h in enumerate(self.history[first:])]
    final = {m: rows[-1][m] for m in records.SCALARS + records.RUNNING if m in rows[-1]}
    final['test_accuracy'] = float(test['accuracy'][k])
    diverged = diverged_epoch >= 0
    metrics = dict.fromkeys(final, float('nan')) if diverged else final
    metrics = {m: metrics[m] for m in records.METRICS + records.RUNNING if m in metrics}
    return records.TrialRecord(
        trial=int(self.trials[k]), setting=dict(self.settings[k]),
        status=records.DIVERGED if diverged else records.OK, metrics=metrics, epochs=len(rows),
        seconds=float(self.seconds[k]),
        diverged_epoch=diverged_epoch - first + 1 if diverged else None, history=rows)

  def take(self, keep: list[int], data: dict[str, Any],
           members: int | None = None) -> 'Population':
    """The population reduced to slots `keep` (padded again, to `members` if given): state,
    history, seconds and settings gathered on the member axis, each member going on exactly as
    it would have. Compiles (cached) for the new member count."""
    index = np.asarray(padded(keep, members))
    mesh = parallel.member_mesh()
    member_seeds = None if self.member_seeds is None else self.member_seeds[index]
    programs = programs_lib.compile_programs(self.spec, len(index),
                                             programs_lib.data_shapes(data),
                                             member_seeds is not None, mesh, self.own_epochs)
    state = programs_lib.gather(mesh)(self.state, parallel.put(index, parallel.replicated(mesh)))
    history = [{name: value[index] for name, value in row.items()} for row in self.history]
    return dataclasses.replace(
        self, programs=programs, state=state, trials=self.trials[index],
        settings=[dict(self.settings[i]) for i in index], size=len(keep), member_seeds=member_seeds,
        history=history, seconds=self.seconds[index], started=self.started[index])

  def copy_state(self, source: np.ndarray) -> None:
    """Slot k's training state becomes slot source[k]'s (PBT's exploit); trials, settings and
    history stay each slot's own. Same member count: no recompile."""
    mesh = parallel.member_mesh()
    self.state = programs_lib.gather(mesh)(self.state,
                                           parallel.put(np.asarray(source),
                                                        parallel.replicated(mesh)))

  def refill(self, slots: list[int], configs: list[ml_collections.ConfigDict],
             settings: list[dict[str, Any]], trials: list[int], data: dict[str, Any]) -> None:
    """Retires the trials of `slots` and starts trials `trials` (configs of this bucket) in them,
    freshly initialized, from the next epoch on; the other members are untouched and the same
    compiled programs go on (take each retired trial's record first). A new trial sees the data
    order of its own epochs in a population made with `own_epochs`, else the population's."""
    mesh = parallel.member_mesh()
    hparams = self.hparams()
    fresh = member.dynamic_hparams(configs)
    mask = np.zeros(len(self.trials), bool)
    for k, slot in enumerate(slots):
      mask[slot] = True
      for section, values in fresh.items():
        for name, column in values.items():
          hparams[section][name][slot] = column[k]
      self.trials[slot], self.settings[slot] = trials[k], dict(settings[k])
      self.started[slot], self.seconds[slot] = self.epoch, 0.0
    new = self.programs.init(parallel.put(hparams, parallel.member_sharding(mesh)),
                             programs_lib.placed_seeds(self.seed, self.member_seeds, mesh),
                             parallel.put(data['x_train'], parallel.replicated(mesh)))
    self.state = programs_lib.scatter(mesh)(self.state, new,
                                            parallel.put(mask, parallel.member_sharding(mesh)))

  def hparams(self) -> member.Hparams:
    """The members' dynamic hyperparameters as {'optimizer': {k: [N]}, 'model': {k: [N]}}."""
    host = parallel.to_host({'optimizer': dict(self.state.opt_state.hyperparams),
                             'model': dict(self.state.model_hparams)})
    return {s: {k: np.array(v) for k, v in values.items()} for s, values in host.items()}

  def set_hparams(self, hparams: member.Hparams) -> None:
    """Replaces the members' dynamic hyperparameters (same tree as `hparams()`), e.g. for PBT."""
    members = parallel.member_sharding(parallel.member_mesh())
    as_array = lambda tree: parallel.put({k: np.asarray(v, np.float32) for k, v in tree.items()},
                                         members)
    opt_state = self.state.opt_state._replace(hyperparams=as_array(hparams['optimizer']))
    self.state = self.state.replace(opt_state=opt_state,
                                    model_hparams=as_array(hparams['model']))

  def save(self, checkpointer: checkpoint.SweepCheckpointer, key: str,
           extra: dict[str, Any] | None = None) -> None:
    """Checkpoints the population as `key`: state, epoch, history, seconds and the caller's
    JSON-able `extra`. History columns of float64 (PBT's hyperparameters) ride in the metadata,
    so that they come back exact; the checkpointer keeps the metrics as float32."""
    exact = sorted({k for row in self.history for k, v in row.items()
                    if np.asarray(v).dtype == np.float64})
    meta = {'extra': extra, 'settings': [_jsonable_setting(s) for s in self.settings],
            'started': np.asarray(self.started).tolist(),
            'exact': {k: [np.asarray(row[k]).tolist() for row in self.history] for k in exact}}
    checkpointer.save_population(key, self.state, self.epoch, self.history,
                                 np.asarray(self.seconds).tolist(), meta)

  def restore(self, checkpointer: checkpoint.SweepCheckpointer, key: str) -> dict | None:
    """Continues from the last checkpoint `key`, if any; returns the caller's `extra` saved with
    it ({} if it saved none), or None where there is no checkpoint."""
    restored = checkpointer.restore_population(key, self.state)
    if restored is None:
      return None
    self.state, self.epoch, history, seconds, meta = restored
    meta = meta or {}
    for column, values in meta.get('exact', {}).items():
      for row, value in zip(history, values):
        row[column] = np.asarray(value, np.float64)
    if meta.get('settings'):
      self.settings = [_setting_from_json(s) for s in meta['settings']]
    if 'started' in meta:  # Slots refilled before the checkpoint (checkpoints of earlier
      self.started = np.asarray(meta['started'], int)  # versions: every trial at epoch 0).
    # Checkpoints of earlier versions hold one number for the whole population.
    self.history = history
    self.seconds = np.broadcast_to(np.asarray(seconds, np.float64), self.trials.shape).copy()
    logging.info('trials %s resume after epoch %d', self.trials[:self.size].tolist(), self.epoch)
    return meta.get('extra') or {}


def _jsonable_setting(setting):
  return {f: records.jsonable(v) for f, v in setting.items()}


def _setting_from_json(setting):
  return {f: tuple(v) if isinstance(v, list) else v for f, v in setting.items()}


def chunks(indices: list[int], max_parallel: int) -> list[list[int]]:
  """Splits a bucket into chunks of at most max_parallel members, sizes as even as possible."""
  count = -(-len(indices) // max_parallel)
  size = -(-len(indices) // count)
  return [indices[i:i + size] for i in range(0, len(indices), size)]


def padded(indices: list[int], members: int | None = None) -> list[int]:
  """`indices` padded with copies of the first to `members` (default programs.padded_size)."""
  indices = list(indices)
  members = members or programs_lib.padded_size(len(indices))
  return indices + [indices[0]] * (members - len(indices))


def chunk_plan(configs: list[ml_collections.ConfigDict],
               max_parallel: int) -> list[tuple[list[int], int]]:
  """Every chunk of every bucket of `configs` as (config indices, trials): see `group_chunks`."""
  return group_chunks(member.buckets(configs), max_parallel)


def group_chunks(groups: Iterable[Sequence[int]],
                 max_parallel: int) -> list[tuple[list[int], int]]:
  """Every chunk of every bucket (`groups`: each bucket's indices) as (indices, trials): the
  indices padded with copies of the first to the size of its bucket's first chunk, so that the
  chunks of a bucket share one program; the first `trials` of them are the chunk's own."""
  plan = []
  for bucket in groups:
    parts = chunks(np.asarray(bucket).tolist(), programs_lib.member_limit(max_parallel))
    size = programs_lib.padded_size(len(parts[0]))
    plan += [(chunk + [chunk[0]] * (size - len(chunk)), len(chunk)) for chunk in parts]
  return plan


def config_seeds(configs: list[ml_collections.ConfigDict], seed: int) -> list[int] | None:
  """The configs' own seeds when any differs from `seed` (replicates of `sweep.seeds`), else
  None: the members then share one init and one data order."""
  seeds = [int(c.seed) for c in configs]
  return seeds if set(seeds) != {seed} else None


def train_trials(configs: list[ml_collections.ConfigDict], settings: list[dict[str, Any]],
                 trial_ids: list[int], data: dict[str, Any], num_classes: int, seed: int,
                 max_parallel: int, on_epoch: OnEpoch | None = None,
                 checkpointer: checkpoint.SweepCheckpointer | None = None
                 ) -> list[records.TrialRecord]:
  """Trains every trial config to its last epoch, bucket by bucket and chunk by chunk.

  Returns one record per config, in input order (see `train_chunks`).
  """
  def chunk(members):
    return ([configs[i] for i in members], [settings[i] for i in members],
            [trial_ids[i] for i in members])
  return train_chunks(chunk_plan(configs, max_parallel), chunk, len(configs), data, num_classes,
                      seed, on_epoch, checkpointer)


def train_chunks(plan: list[tuple[list[int], int]], chunk: MakeChunk, count: int,
                 data: dict[str, Any], num_classes: int, seed: int,
                 on_epoch: OnEpoch | None = None,
                 checkpointer: checkpoint.SweepCheckpointer | None = None
                 ) -> list[records.TrialRecord]:
  """Trains the chunks of `plan` (group_chunks over indices 0..count-1) one after another.

  `chunk(indices)` makes a chunk's configs, settings and trial ids when its turn comes, so a
  sweep of millions of trials holds the configs of one chunk at a time. Returns one record per
  index, in index order. A short chunk is padded (group_chunks) to reuse its bucket's program;
  the copies are dropped. With a `checkpointer` a finished chunk is journaled and never trained
  again, and a chunk in flight goes on from its last checkpoint.
  """
  out = [None] * count
  data = parallel.put(data, parallel.replicated(parallel.member_mesh()))  # Placed once for all.
  for members, size in plan:
    configs, settings, ids = chunk(members)
    key = checkpointer.chunk_key(configs, ids, seed) if checkpointer else None
    done = checkpointer.load_chunk(key, ids[:size]) if checkpointer else None
    if done is None:
      population = Population.create(configs, settings, ids, data, num_classes, seed, size,
                                     config_seeds(configs, seed))
      done = _train_to_end(population, data, on_epoch, checkpointer, key)
      if checkpointer:
        checkpointer.save_chunk(key, done)
    for i, record in zip(members, done):
      out[i] = record
  return out


def _train_to_end(population, data, on_epoch, checkpointer, key):
  """Trains a chunk's population (resuming it when checkpointed); its trials' records."""
  if checkpointer:
    population.restore(checkpointer, key)
  while population.epoch < population.epochs:
    population.run_epoch(data, on_epoch)
    # Not after the last epoch: the chunk's records go to the journal right after its test.
    if (checkpointer and population.epoch < population.epochs
        and checkpointer.due(population.epoch, population.epochs)):
      population.save(checkpointer, key)
  return population.records(data, range(population.size))
