"""A list of trials trained in slots with a pruner: stopped trials leave, the next start in place.

Each bucket's trials run in one population of at most max_parallel slots. After every epoch each
slot's trial is judged at its own epoch (the epochs since it started): finished, diverged,
stopped (train.patience: no better value for that many epochs) or pruned
(bnlab.strategies.pruning, against every other trial's value at that epoch). A trial that
stops leaves its slot to the bucket's next trial (with sweep.ask=slot, asked of the sampler only
then: bnlab.strategies.asked), initialized in place (Population.refill: the
program goes on, nothing recompiles), so the compute a pruned trial would have spent trains new
trials instead; once the bucket has no trial left to start, the population shrinks to its running
trials (Population.take) in a program of half as many members each time they fit (a few compiles
per bucket, not one per count). Each slot draws the data order of its own trial's epochs, so a trial
trains alike whenever its slot frees up; which trials are pruned is a function of (config,
results so far), so a rerun replays it exactly.

With a checkpointer, each bucket saves its population on the train.checkpoint_every cadence
(its slots' trials, the records of the trials that stopped, the position in the bucket) and
journals its records when done; a rerun restores both and goes on bit for bit.
"""

import dataclasses
from typing import Any, Callable, Protocol, Sequence

import ml_collections
import numpy as np

from bnlab import checkpoint
from bnlab import population as population_lib
from bnlab import programs
from bnlab import records
from bnlab.strategies import pruning

# The configs of trials (by index into the list): context.trial_config over their settings.
MakeConfigs = Callable[[list[int]], list[ml_collections.ConfigDict]]


class Asker(Protocol):
  """A sampler asked one trial per slot: it writes run.settings[i] for each of `indices`."""

  def config(self, group: int) -> ml_collections.ConfigDict: ...

  def ask(self, group: int, indices: list[int]) -> None: ...

  def tell(self, index: int, record: records.TrialRecord) -> None: ...

  def replay(self, group: int, done: dict[int, records.TrialRecord],
             running: dict[str, Any]) -> None: ...

  def running(self, indices: list[int]) -> dict[str, Any]: ...


@dataclasses.dataclass
class Bucket:
  """One bucket's run: its trials (indices into the list), how many have started, the records
  of those that stopped, and which trial each slot of the population holds."""
  members: list[int]
  group: int = 0  # Its index among the groups given to `train`.
  started: int = 0
  done: dict[int, records.TrialRecord] = dataclasses.field(default_factory=dict)
  slots: list[int] = dataclasses.field(default_factory=list)  # Padded like the population.


@dataclasses.dataclass
class Run:
  """What every bucket shares: the trials, the data, the pruner and where to checkpoint."""
  settings: Sequence[dict[str, Any]]
  trial_ids: list[int]
  configs: MakeConfigs
  data: dict[str, Any]
  num_classes: int
  seed: int
  max_parallel: int
  pruner: pruning.Pruner | None  # None: trials stop when done or diverged only.
  metric: str
  mode: str
  on_epoch: population_lib.OnEpoch | None = None
  checkpointer: checkpoint.SweepCheckpointer | None = None
  # Where trials are asked when their slot frees (bnlab.strategies.asked): `settings` is then
  # filled as they are asked, and the asker is told every trial that stops.
  asker: Asker | None = None
  patience: int = 0  # train.patience: stop a trial whose metric stalled this many epochs.


def train(run: Run, groups: list[np.ndarray]) -> list[records.TrialRecord]:
  """Trains every trial of `groups` (each a bucket's indices into run.settings); one record per
  index, in index order."""
  board, out = pruning.Board(), [None] * len(run.settings)
  for group, members in enumerate(groups):
    bucket = Bucket([int(i) for i in members], group)
    key = _key(run, bucket)
    done = run.checkpointer.load_chunk(key, [run.trial_ids[i] for i in bucket.members]) \
        if run.checkpointer else None
    if done is not None and run.asker:  # The sampler relearns what it was told, in order.
      run.asker.replay(group, dict(zip(bucket.members, done)), {})
    if done is None:
      done = _train_bucket(run, bucket, board, key)
      if run.checkpointer:
        run.checkpointer.save_chunk(key, done)
    for i, record in zip(bucket.members, done):
      out[i] = record
      board.add_record(record, run.metric, run.mode)
  return out


def _key(run, bucket):
  """The bucket's checkpoint and journal name: its first config, its trials and the seed."""
  ids = [run.trial_ids[i] for i in bucket.members]
  first = [run.asker.config(bucket.group)] if run.asker else run.configs(bucket.members[:1])
  return 'slots-' + checkpoint.chunk_key(first,
                                         [ids[0], ids[-1], len(ids)], run.seed)


def _create(run, bucket, slots, size):
  """A population of the trials `slots` (padded), the first `size` of them its own."""
  bucket.slots = list(slots)
  return population_lib.Population.create(
      run.configs(bucket.slots), [run.settings[i] for i in bucket.slots],
      [run.trial_ids[i] for i in bucket.slots], run.data, run.num_classes, run.seed, size,
      own_epochs=True)


def _start(run, bucket, board, key):
  """The bucket's population: restored from its checkpoint, or its first trials in fresh slots."""
  meta = run.checkpointer.restore_meta(key) if run.checkpointer else None
  if meta is None:
    count = min(len(bucket.members), programs.member_limit(run.max_parallel))
    bucket.started = count
    if run.asker:
      run.asker.ask(bucket.group, bucket.members[:count])
    return _create(run, bucket, population_lib.padded(bucket.members[:count]), count)
  state = meta['extra']['extra']
  bucket.started = state['started']
  bucket.done = {int(i): records.TrialRecord.from_json(r) for i, r in state['done'].items()}
  if run.asker:
    run.asker.replay(bucket.group, bucket.done, state['asked'])
  population = _create(run, bucket, state['slots'], state['size'])
  population.restore(run.checkpointer, key)
  for record in bucket.done.values():
    board.add_record(record, run.metric, run.mode)
  _add_history(population, board, run)
  return population


def _add_history(population, board, run):
  """The running trials' values at every epoch so far (a restored population's history)."""
  for k in range(population.size):
    first = int(population.started[k])
    for e, row in enumerate(population.history[first:], 1):
      value = np.nan if row['diverged'][k] else float(row[run.metric][k])
      board.add(int(population.trials[k]), e, records.oriented(value, run.mode))


def _judge(run, population, board):
  """{slot: status} of the trials that stop after this epoch: finished (ok), diverged (their
  record says so), or pruned; every running trial's value goes on the board first."""
  scores = population.scores(run.metric, run.mode)
  epochs = population.epoch - population.started[:population.size]
  for k in range(population.size):
    board.add(int(population.trials[k]), int(epochs[k]), scores[k])
  stop = {}
  for k in range(population.size):
    trial, epoch = int(population.trials[k]), int(epochs[k])
    if epoch >= population.epochs or not np.isfinite(scores[k]):
      stop[k] = records.OK
    elif pruning.stalled(board, trial, epoch, run.patience):
      stop[k] = records.STOPPED
    elif run.pruner and pruning.prunes(run.pruner, board.best(trial, epoch), epoch,
                        board.others(trial, epoch)):
      stop[k] = records.PRUNED
  return stop


def _train_bucket(run, bucket, board, key):
  """Trains one bucket to its last trial; its records, in bucket order."""
  population = _start(run, bucket, board, key)
  while population.size:
    population.run_epoch(run.data, run.on_epoch)
    stop = _judge(run, population, board)
    if stop:
      population = _replace(run, bucket, population, stop)
    every = run.checkpointer.every if run.checkpointer else 0
    if population.size and every > 0 and population.epoch % every == 0:
      _save(run, bucket, population, key)
  return [bucket.done[i] for i in bucket.members]


def _replace(run, bucket, population, stop):
  """Records the stopped trials, starts the bucket's next trials in their slots, and shrinks the
  population to its running trials once none is left to start."""
  free = sorted(stop)
  for slot, record in zip(free, population.records(run.data, free)):
    if stop[slot] != records.OK and record.status == records.OK:
      record.status = stop[slot]  # Pruned or stopped: its record stays as trained so far.
    bucket.done[bucket.slots[slot]] = record
    if run.asker:
      run.asker.tell(bucket.slots[slot], record)
  new = bucket.members[bucket.started:bucket.started + len(free)]
  bucket.started += len(new)
  if new and run.asker:
    run.asker.ask(bucket.group, new)
  if new:
    filled = free[:len(new)]
    population.refill(filled, run.configs(new), [run.settings[i] for i in new],
                      [run.trial_ids[i] for i in new], run.data)
    for slot, i in zip(filled, new):
      bucket.slots[slot] = i
  idle = set(free[len(new):])
  if not idle:
    return population
  running = [k for k in range(population.size) if k not in idle]
  if not running:
    population.size = 0
    return population
  members = program_size(len(population.trials), len(running))
  bucket.slots = [bucket.slots[k] for k in population_lib.padded(running, members)]
  return population.take(running, run.data, members)


def program_size(members: int, running: int) -> int:
  """The members of the program that goes on with `running` trials, from one of `members`:
  halved while the running trials fit in half, so a bucket compiles a handful of sizes (each
  compile costs seconds) rather than one for every count its trials stop at."""
  needed = programs.padded_size(running)
  while needed <= programs.padded_size(members // 2) < members:  # Whole devices' worth each.
    members = programs.padded_size(members // 2)
  return members


def _save(run, bucket, population, key):
  extra = {'started': bucket.started, 'slots': bucket.slots, 'size': population.size,
           'done': {str(i): r.to_json() for i, r in bucket.done.items()}}
  if run.asker:
    extra['asked'] = run.asker.running([bucket.slots[k] for k in range(population.size)])
  population.save(run.checkpointer, key, extra)
