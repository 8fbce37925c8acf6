"""The live view of a running sweep: a progress bar, TensorBoard runs, and files a report reads.

Once per epoch of each chunk, from the host metrics the population has already fetched (nothing here
touches the device):

- a tqdm bar over all trial-epochs shows the best and median metric so far;
- each trial gets a TensorBoard run `WORKDIR/tensorboard/trial_NNNN`: its epoch scalars and,
  through the hparams plugin, its setting and its sweep (workdir, dataset, strategy), so
  `tensorboard --logdir runs/` shows every sweep under runs/ with one hparams row per trial,
  never one row merging trials of two sweeps. The events are written with TensorBoard's own
  TF-free writer and summary protos: tf.summary (and clu's writers over it) cost ~2 ms per scalar
  in eager mode, 17% of the training time of configs/sweep.py here;
- `progress.jsonl` gets one row per (trial, epoch), so `python -m bnlab.report` can draw a sweep
  that is still running or was killed before results.csv;
- `timing.json` says where the time went (compile per bucket vs train) and on which device.
"""

import json
import math
import os
import socket
import sys
import time
from typing import Any, Iterable

import jax
import numpy as np
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.plugins.scalar import summary_v2 as scalar_summary
from tensorboard.summary.writer import record_writer
import tqdm

from bnlab import files
from bnlab import member
from bnlab import population as population_lib
from bnlab import records

TENSORBOARD_DIR = 'tensorboard'


def chain(*callbacks: population_lib.OnEpoch) -> population_lib.OnEpoch:
  """One on_epoch callback that calls each of `callbacks` in turn."""
  def on_epoch(population, metrics, seconds):
    for callback in callbacks:
      callback(population, metrics, seconds)
  return on_epoch


def hparam_value(value: Any) -> bool | int | float | str:
  """TensorBoard's hparams take bool, int, float or str: a tuple (widths) becomes its text."""
  return value if isinstance(value, (bool, int, float, str)) else str(value)


def sweep_hparams(workdir: str, config) -> dict[str, str]:
  """What tells one sweep's trials from another's in TensorBoard's hparams table. `tensorboard
  --logdir runs/` groups runs by their hparams: trial i of two sweeps with one seed and space has
  one setting, and without these its rows would merge and show their mean."""
  return {'sweep.workdir': workdir, 'dataset.name': config.dataset.name,
          'sweep.strategy': config.sweep.strategy}


class TrialRun:
  """One trial's TensorBoard run: its setting for the hparams plugin, then its epoch scalars.

  Written synchronously with TensorBoard's record writer (the format of its EventFileWriter,
  without the writer thread per run that a chunk of hundreds of trials would start).
  """

  def __init__(self, logdir, hparams):
    files.makedirs(logdir)
    name = f'events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}'
    events = files.open_file(os.path.join(logdir, name), 'wb')  # A GFile on gs://.
    self.records = record_writer.RecordWriter(events)  # Closes the file on close().
    self._add(event_pb2.Event(wall_time=time.time(), file_version='brain.Event:2'))
    self._add(event_pb2.Event(wall_time=time.time(), step=0,
                              summary=hparams_summary.hparams_pb(hparams)))

  def _add(self, event):
    self.records.write(event.SerializeToString())

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    values = [v for tag, x in scalars.items() for v in scalar_summary.scalar_pb(tag, x).value]
    self._add(event_pb2.Event(wall_time=time.time(), step=step,
                              summary=summary_pb2.Summary(value=values)))

  def flush(self) -> None:
    self.records.flush()

  def close(self) -> None:
    self.records.close()


def bucket_label(setting: dict[str, Any]) -> str:
  """The static (shape-deciding) part of a setting: what its compiled program was built for."""
  static = [f'{f}={v}' for f, v in setting.items() if f not in member.DYNAMIC_FIELDS]
  return ', '.join(static) or 'every trial'


def describe_trials(trials: Iterable[int], max_runs: int = 3) -> str:
  """'trial 5', 'trials 0, 2-4', or past `max_runs` runs of consecutive ids '66 trials in
  1-126': a bucket's trials are often scattered, where 'trials 1-126' would claim 126 of them."""
  ids = sorted({int(t) for t in trials})
  if len(ids) == 1:
    return f'trial {ids[0]}'
  runs = []
  for t in ids:
    if runs and t == runs[-1][1] + 1:
      runs[-1][1] = t
    else:
      runs.append([t, t])
  if len(runs) <= max_runs:
    return 'trials ' + ', '.join(str(a) if a == b else f'{a}-{b}' for a, b in runs)
  return f'{len(ids)} trials in {ids[0]}-{ids[-1]}'


def format_rate(members: int, seconds: float) -> str:
  """Member-epochs per second, or seconds per member-epoch below one per second, with enough
  digits to read: a slow dataset's 0.4 per second would otherwise print as '0 members/s'."""
  rate = members / max(seconds, 1e-9)
  if rate >= 1:
    return f'{rate:.0f} members/s' if rate >= 100 else f'{rate:.1f} members/s'
  per = 1 / rate
  return f'{per:.0f} s/member' if per >= 100 else f'{per:.1f} s/member'


def summarize(values: Iterable[float], mode: str) -> tuple[float, float]:
  """(best, median) of the finite values, NaNs if none."""
  values = np.asarray([v for v in values if math.isfinite(v)], np.float64)
  if not values.size:
    return math.nan, math.nan
  return (values.max() if mode == 'max' else values.min()), float(np.median(values))


class Monitor:
  """The on_epoch callback that keeps the live view; `close()` at the end of the sweep."""

  def __init__(self, workdir: str, config, trial_epochs: int, bar_file=None):
    """`trial_epochs` is what the strategy plans to train (base.Plan): the bar's total."""
    self.workdir = workdir
    self.metric, self.mode = config.sweep.metric, config.sweep.mode
    self.sweep_hparams = sweep_hparams(workdir, config)
    self.latest = {}  # Trial id -> its latest metric (NaN once diverged).
    self.writers = {}  # Trial id -> its open TensorBoard writer.
    self.programs = {}  # id(Programs) -> {'bucket', 'members', 'compile_seconds'}.
    self.train_seconds = 0.0
    self.trial_epochs = 0
    self.start = time.perf_counter()
    self.device = {'device_kind': jax.devices()[0].device_kind,
                   'device_count': jax.device_count(), 'platform': jax.default_backend()}
    self.primary = jax.process_index() == 0  # Only process 0 writes workdir files.
    self.bar = tqdm.tqdm(total=trial_epochs, unit='trial-epoch',
                         file=bar_file or sys.stderr, disable=None if bar_file is None else False,
                         dynamic_ncols=True)
    # On a terminal the bar is the progress display; piped (the bar is off), log lines are.
    self.on_terminal = not self.bar.disable
    if self.primary:
      files.makedirs(workdir)
    # Appended and flushed once per epoch. On gs:// a flush through tf.io.gfile uploads the
    # whole file again (GCS objects are immutable): a cost that grows with the file, kept
    # because the rows are small next to the epochs they describe (see docs/cloud_tpu.md).
    path = os.path.join(workdir, records.PROGRESS_FILE) if self.primary else os.devnull
    self.progress = files.open_file(path, 'a')

  def _writer(self, trial, setting):
    """The trial's TensorBoard writer; its setting goes to the hparams plugin when it opens,
    after the sweep's identity (`sweep_hparams`)."""
    if trial not in self.writers:
      logdir = os.path.join(self.workdir, TENSORBOARD_DIR, f'trial_{trial:04d}')
      self.writers[trial] = TrialRun(logdir, {**self.sweep_hparams, 'trial': trial, **{
          f: hparam_value(v) for f, v in setting.items()}})
    return self.writers[trial]

  def on_epoch(self, population: population_lib.Population, metrics: dict[str, np.ndarray],
               seconds: float) -> None:
    """Records one epoch of one chunk; the padding copies of a short chunk are skipped."""
    self._note_programs(population)
    self.train_seconds += seconds
    members = {}
    for k, trial in enumerate(population.trials[:population.size].tolist()):
      members.setdefault(int(trial), k)
    rows = []
    for trial, k in members.items():
      values = {m: float(metrics[m][k]) for m in records.SCALARS if m in metrics}
      diverged = bool(metrics['diverged'][k])
      setting = population.settings[k]
      epoch = population.epoch - int(population.started[k])  # The trial's own epoch.
      self.latest[trial] = math.nan if diverged else values.get(self.metric, math.nan)
      rows.append(json.dumps({'trial': trial, **{f: records.jsonable(v) for f, v in
                                                 setting.items()},
                              'epoch': epoch, 'diverged': diverged,
                              **{m: records.jsonable(v) for m, v in values.items()}}))
      if not diverged and self.primary:
        self._writer(trial, setting).write_scalars(epoch, values)
    self.progress.write('\n'.join(rows) + '\n')
    self.progress.flush()
    self._after_epoch(population, len(members))

  def _after_epoch(self, population, count):
    last = population.epoch >= population.epochs
    for writer in self.writers.values():
      writer.flush()
    if last:  # The chunk is done: close its writers so a large sweep keeps few files open.
      for trial in population.trials.tolist():
        writer = self.writers.pop(int(trial), None)
        if writer is not None:
          writer.close()
    self.trial_epochs += count
    best, median = summarize(self.latest.values(), self.mode)
    self.bar.set_description(f'{describe_trials(population.trials[:population.size])}, epoch '
                             f'{population.epoch}/{population.epochs}', refresh=False)
    self.bar.set_postfix_str(f'{self.metric} best {best:.4f} median {median:.4f}', refresh=False)
    self.bar.update(count)
    self.write_timing()

  def _note_programs(self, population):
    """Counts each compiled program once (chunks of equal size share one, lru_cached)."""
    programs = population.programs
    if id(programs) not in self.programs:
      self.programs[id(programs)] = {
          'bucket': bucket_label(population.settings[0]),
          'members': int(len(population.trials)),
          'compile_seconds': float(programs.compile_seconds)}

  def timing(self) -> dict[str, Any]:
    compile_seconds = sum(p['compile_seconds'] for p in self.programs.values())
    wall = time.perf_counter() - self.start
    return {**self.device, 'compile_seconds': compile_seconds,
            'train_seconds': self.train_seconds, 'wall_seconds': wall,
            'trial_epochs': self.trial_epochs,
            'trial_epochs_per_second': self.trial_epochs / max(self.train_seconds, 1e-9),
            'programs': list(self.programs.values())}

  def write_timing(self) -> None:
    if self.primary:
      files.write_text(os.path.join(self.workdir, records.TIMING_FILE),
                       json.dumps(self.timing(), indent=2) + '\n')

  def close(self) -> None:
    """Flushes and closes every file; writes the final timing.json."""
    for writer in self.writers.values():
      writer.close()
    self.writers.clear()
    self.bar.close()
    self.progress.close()
    self.write_timing()
