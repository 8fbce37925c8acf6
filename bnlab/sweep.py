"""run(config, workdir): a whole sweep, from config to the workdir files of the contract.

The checks, the workdir, the strategy and the writer: config -> space -> strategy -> population ->
programs -> member, and the TrialRecords back up to the monitor, the results files and the report.
"""

import contextlib
import itertools
import os
import shlex
import sys
import time

from absl import logging
import ml_collections
import numpy as np

from bnlab import checkpoint
from bnlab import checks
from bnlab import data as data_lib
from bnlab import files
from bnlab import integrity
from bnlab import member
from bnlab import memory
from bnlab import monitor
from bnlab import parallel
from bnlab import pareto
from bnlab import population as population_lib
from bnlab import programs
from bnlab import records
from bnlab import space
from bnlab import strategies
from bnlab import workdir as workdir_lib
from bnlab.reporting import pages
from bnlab.reporting import results as results_files
from bnlab.strategies import base


def prepare(config: ml_collections.ConfigDict) -> dict[str, space.Spec]:
  """Checks the config; returns its parsed space. Raises ConfigError before anything compiles."""
  return checks.check_config(config)


class Progress:
  """One absl log line per epoch: best and median validation accuracy so far, throughput.

  With `quiet` (the monitor's bar is on a terminal), at DEBUG level: the bar shows the same
  numbers, and a line printed under it each epoch would cut into it.
  """

  def __init__(self, num_trials: int, quiet: bool = False):
    self.num_trials = num_trials
    self.level = logging.DEBUG if quiet else logging.INFO
    self.finished = []  # Final val accuracies of trials done so far.

  def on_epoch(self, population: population_lib.Population, metrics: dict[str, np.ndarray],
               seconds: float) -> None:
    size = population.size
    acc = np.where(metrics['diverged'][:size], np.nan, metrics['val_accuracy'][:size])
    seen = np.concatenate([np.asarray(self.finished, np.float32), acc])
    seen = seen[np.isfinite(seen)]
    best, median = (seen.max(), np.median(seen)) if seen.size else (np.nan, np.nan)
    own = population.epoch - np.asarray(population.started[:size])  # Slots start apart.
    epochs = f'{own.min()}' if own.min() == own.max() else f'{own.min()}-{own.max()}'
    logging.log(self.level, '%s of %d | epoch %s/%d | val_accuracy best %.4f median %.4f | %s '
                '(member-epochs)', monitor.describe_trials(population.trials[:size]),
                self.num_trials, epochs, population.epochs, best, median,
                monitor.format_rate(len(population.trials), seconds))
    self.finished.extend(acc[own == population.epochs].tolist())


def open_workdir(config: ml_collections.ConfigDict, workdir: str, overwrite: bool = False,
                 damaged: tuple[str, ...] = ()) -> checkpoint.SweepCheckpointer:
  """A checkpointer for `workdir`, set up to train: cleared for `overwrite` (only a workdir bnlab
  owns), claimed, its layout checked, its `damaged` results files set aside, its config written.
  Call it under `workdir_lib.locked`, after every check that can refuse the run, so that a
  refused run changes nothing."""
  writer = parallel.is_writer()  # Process 0 alone writes; the others only read (after it).
  if writer:
    if overwrite:
      workdir_lib.clear(workdir)
    checks.check_workdir(config, workdir)
    workdir_lib.claim(workdir)
    workdir_lib.check_layout(workdir)
    workdir_lib.check_dataset(workdir, config.dataset.name)
    moved = integrity.set_aside(workdir, damaged)
    if moved:
      print(f'kept the damaged files as {", ".join(moved)} in {workdir}', file=sys.stderr)
    files.write_text(os.path.join(workdir, 'config.json'), config.to_json_best_effort(indent=2))
  parallel.sync('open_workdir')  # The others see the workdir only once process 0 has set it up.
  return checkpoint.SweepCheckpointer(workdir, config.train.checkpoint_every,
                                     config.train.keep_checkpoints)


def _log_throughput(done, config, data, seconds, live):
  """The end-of-sweep throughput line: member-steps per second, compile seconds, devices."""
  num_train = data['y_train'].shape[0]
  batch = lambda r: r.setting.get('train.batch_size', config.train.batch_size)
  steps = sum(r.extras.get('seeds', 1) * r.epochs * (num_train // batch(r)) for r in done)
  logging.info('throughput (wall time incl. compile): %s', parallel.format_throughput(
      parallel.throughput(steps, sum(r.extras.get('seeds', 1) for r in done), seconds,
                          [p['compile_seconds'] for p in live.programs.values()])))


def corner_configs(config: ml_collections.ConfigDict, specs: dict[str, space.Spec],
                   limit: int = 16) -> list[ml_collections.ConfigDict]:
  """Valid trial configs that reach the buckets a sweep of `specs` can make, for the memory plan
  before any trial is known: every combination of the static fields' values (each choice, both
  ends of a numeric range), or, past `limit` combinations, each value with the others at base."""
  static = {f: (spec.value(0), spec.value(1)) if spec.is_numeric else spec.args
            for f, spec in specs.items() if f not in member.DYNAMIC_FIELDS}
  combos = list(itertools.islice(itertools.product(*static.values()), limit + 1))
  if len(combos) > limit:
    combos = [{f: value} for f, values in static.items() for value in values]
  else:
    combos = [dict(zip(static, values)) for values in combos]
  configs = []
  for combo in combos:
    try:
      trial = space.with_overrides(config, combo)
      checks.check_trial(trial)
    except (TypeError, records.ConfigError):
      continue  # Refused when (if ever) a strategy proposes it.
    configs.append(trial)
  return configs or [config]


def _load(config, specs):
  """The data, its classes and the members per program: every check that needs the data."""
  data, num_classes = data_lib.load(config.dataset)
  max_parallel = memory.fit_parallel(corner_configs(config, specs),
                                     programs.data_shapes(data), num_classes,
                                     config.sweep.max_parallel)
  return data, num_classes, max_parallel


def _train(config, specs, loaded, checkpointer, workdir):
  """Runs the strategy on the loaded data: (records, monitor)."""
  strategy = strategies.STRATEGIES[config.sweep.strategy]
  plan = strategy.plan(config, specs)
  data, num_classes, max_parallel = loaded
  logging.info('%s on %s (%d train / %d val / %d test examples), strategy %s',
               records.count(plan.trials, 'trial'), config.dataset.name, data['y_train'].shape[0],
               data['y_val'].shape[0], data['y_test'].shape[0], config.sweep.strategy)
  live = monitor.Monitor(workdir, config, plan.trial_epochs)  # Bar, TensorBoard, timing.json.
  context = base.Context(config, specs, data, num_classes, max_parallel,
                         monitor.chain(Progress(plan.trials, live.on_terminal).on_epoch,
                                       live.on_epoch),
                         checkpointer, checks.check_trial)
  done = strategy.run(context)
  live.close()
  return done, live


def run(config: ml_collections.ConfigDict, workdir: str,
        overwrite: bool = False) -> list[records.TrialRecord] | None:
  """Trains the sweep of `config` and writes its workdir; returns the trials' records.

  An interrupted sweep on `workdir` resumes from its checkpoints; a complete one is left as it
  is (returns None); one of another config is refused (records.ConfigError) unless `overwrite`.
  """
  specs = prepare(config)
  writer = parallel.is_writer()  # Process 0 alone writes the workdir; the others train alongside.
  completion = integrity.Completion(False)
  if not overwrite:  # Read-only: another config's workdir, or a finished one, changes nothing.
    checks.check_workdir(config, workdir)
    completion = integrity.completion(workdir)
    if completion.finished:
      print(f'{workdir} is complete: nothing to train (--overwrite starts it afresh)')
      print(where_to_look(workdir))
      return None
    if completion.problem:
      print(f'warning: {completion.problem}: rebuilding the results from its journal and '
            'checkpoints (trials whose records are damaged too are trained again)',
            file=sys.stderr)
  if writer:
    results_files.start_worker()  # The report's importance: its imports overlap the compile.
  # $BNLAB_COMPILATION_CACHE=off turns it off. JAX's own cache only where bnlab's cannot keep
  # every program: it would answer bnlab's compiles with executables that cannot be kept.
  programs.enable_compilation_cache(jax_cache=not programs.keeps_programs(
      [config.model.name, *(specs['model.name'].args if 'model.name' in specs else ())]))
  start = time.perf_counter()
  loaded = _load(config, specs)  # Its checks refuse a run before anything is written.
  with workdir_lib.locked(workdir) if writer else contextlib.nullcontext():
    checkpointer = open_workdir(config, workdir, overwrite, completion.damaged)
    done, live = _train(config, specs, loaded, checkpointer, workdir)
    if not writer:
      checkpointer.close()
      return done
    return _finish(config, specs, workdir, done, loaded[0], start, live, checkpointer)


def _finish(config, specs, workdir, done, data, start, live, checkpointer):
  """Writes the results files and the report, says where, and marks the workdir complete."""
  _log_throughput(done, config, data, time.perf_counter() - start, live)
  sweep = config.sweep
  done = [records.with_best_epoch(r, sweep.metric, sweep.mode, sweep.select) for r in done]
  best = results_files.write_sweep(workdir, config, specs, done)
  logging.info('%s in %.1f s', records.count(len(done), 'trial'), time.perf_counter() - start)
  print(results_files.leaderboard(done, list(specs), sweep.metric, sweep.mode,
                                  objectives=pareto.parse(sweep.objectives)))
  checkpointer.mark_complete(workdir, {'trials': len(done), 'best': best and best.trial})
  checkpointer.close()
  if best is None:
    who = 'the one trial' if len(done) == 1 else f'every one of the {len(done)} trials'
    print(f'error: {who} diverged (non-finite loss): no best setting; try lower learning rates',
          file=sys.stderr)
  else:
    print(f'best: trial {best.trial} {config.sweep.metric}={best.value(config.sweep.metric):.4f}'
          f' -> {os.path.join(workdir, "best_config.py")}')
  print(where_to_look(workdir))  # Last, so that the end of the output says where to look.
  return done


def where_to_look(workdir: str) -> str:
  """The closing lines of a run: the report's path and the TensorBoard command for `workdir`
  (quoted for a shell where it needs to be)."""
  return (f'report: {os.path.join(workdir, pages.REPORT_FILE)}\n'
          f'tensorboard: tensorboard --logdir {shlex.quote(workdir)}')
