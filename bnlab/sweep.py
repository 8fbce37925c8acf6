"""run(config, workdir): a whole sweep, from config to the workdir files of the contract."""

import os
import sys
import time

from absl import logging
import numpy as np

from bnlab import checkpoint
from bnlab import checks
from bnlab import data as data_lib
from bnlab import engine
from bnlab import files
from bnlab import memory
from bnlab import monitor
from bnlab import parallel
from bnlab import report
from bnlab import space
from bnlab import strategies
from bnlab import worker


def prepare(config):
  """Checks the config and builds every trial's config; raises ConfigError before compiling."""
  specs = checks.check_config(config)
  settings = strategies.propose(config, specs)
  configs = []
  for setting in settings:
    try:
      trial_config = space.with_overrides(config, setting)
    except TypeError as e:
      raise checks.ConfigError(f'sweep.space: {e}') from None
    checks.check_trial(trial_config)
    configs.append(trial_config)
  return specs, settings, configs


class Progress:
  """One absl log line per epoch: best and median validation accuracy so far, throughput."""

  def __init__(self, num_trials):
    self.num_trials = num_trials
    self.finished = []  # Final val accuracies of trials done so far.

  def on_epoch(self, population, metrics, seconds):
    acc = np.where(metrics['diverged'], np.nan, metrics['val_accuracy'])
    seen = np.concatenate([np.asarray(self.finished, np.float32), acc])
    seen = seen[np.isfinite(seen)]
    best, median = (seen.max(), np.median(seen)) if seen.size else (np.nan, np.nan)
    logging.info('trials %d-%d of %d | epoch %d/%d | val_accuracy best %.4f median %.4f | '
                 '%.0f members/s (member-epochs per second)',
                 population.trials.min(), population.trials.max(), self.num_trials,
                 population.epoch, population.static.train.epochs, best, median,
                 acc.size / max(seconds, 1e-9))
    if population.epoch == population.static.train.epochs:
      self.finished.extend(acc.tolist())


def open_workdir(config, workdir, overwrite=False):
  """A checkpointer for `workdir`, after refusing a workdir of another config (or clearing it)."""
  writer = parallel.is_writer()  # Process 0 alone writes; the others only read (after it).
  if writer and overwrite and files.exists(os.path.join(workdir, 'config.json')):
    files.rmtree(workdir)  # Only a folder that holds a bnlab config.json: one of ours.
  if writer or not overwrite:
    checks.check_workdir(config, workdir)
  checkpointer = checkpoint.SweepCheckpointer(workdir, config.train.checkpoint_every)
  if writer and not checkpointer.is_complete():
    files.makedirs(workdir)
    files.write_text(os.path.join(workdir, 'config.json'), config.to_json_best_effort(indent=2))
  parallel.sync('open_workdir')  # The others see the workdir only once process 0 has set it up.
  return checkpointer


def run(config, workdir, overwrite=False):
  """Trains the sweep of `config` and writes its workdir; returns the results.

  An interrupted sweep on `workdir` resumes from its checkpoints; a complete one is left as it
  is (returns None); one of another config is refused (checks.ConfigError) unless `overwrite`.
  """
  specs, settings, configs = prepare(config)
  writer = parallel.is_writer()  # Process 0 alone writes the workdir; the others train alongside.
  checkpointer = open_workdir(config, workdir, overwrite)
  if checkpointer.is_complete():
    print(f'{workdir} is complete: nothing to train (--overwrite starts it afresh)')
    return None
  if writer:
    worker.start()  # The report's importance: its imports overlap the compile (bnlab/worker.py).
  engine.enable_compilation_cache()  # $BNLAB_COMPILATION_CACHE=off turns it off.
  data, num_classes = data_lib.load(config.dataset)
  max_parallel = memory.fit_parallel(configs, engine.data_shapes(data), num_classes,
                                     config.sweep.max_parallel)
  # Adaptive strategies know only their first round (or population) in advance.
  planned = len(configs) if config.sweep.strategy == 'grid' else config.sweep.num_trials
  logging.info('%d trials on %s (%d train / %d val / %d test examples), strategy %s',
               planned, config.dataset.name, data['y_train'].shape[0],
               data['y_val'].shape[0], data['y_test'].shape[0], config.sweep.strategy)
  start = time.perf_counter()
  progress = Progress(planned)
  live = monitor.Monitor(workdir, config, settings, configs)  # Bar, TensorBoard, timing.json.
  settings, results = strategies.run(config, specs, data, num_classes,
                                     monitor.chain(progress.on_epoch, live.on_epoch),
                                     max_parallel, checkpointer)
  live.close()
  seconds = time.perf_counter() - start
  for result, setting in zip(results, settings):
    result['setting'], result['config'] = setting, space.with_overrides(config, setting)
  if not writer:
    checkpointer.close()
    return results
  steps = sum(r.get('seeds', 1) * r['epochs'] * (data['y_train'].shape[0]
                                                 // r['config'].train.batch_size)
              for r in results)
  logging.info('throughput (wall time incl. compile): %s', parallel.format_throughput(
      parallel.throughput(steps, sum(r.get('seeds', 1) for r in results), seconds,
                          [p['compile_seconds'] for p in live.programs.values()])))
  best = report.write_report(workdir, config, specs, results)
  report.write_strategy_files(workdir, config, specs, results)
  logging.info('%d trials in %.1f s', len(results), time.perf_counter() - start)
  print(report.leaderboard(results, list(specs), config.sweep.metric, config.sweep.mode))
  checkpointer.mark_complete({'trials': len(results), 'best': best and best['trial']})
  checkpointer.close()
  if best is None:
    print(f'error: every one of the {len(results)} trials diverged (non-finite loss): no best '
          'setting; try lower learning rates', file=sys.stderr)
  else:
    print(f'best: trial {best["trial"]} {config.sweep.metric}={best[config.sweep.metric]:.4f}'
          f' -> {os.path.join(workdir, "best_config.py")}')
  return results
