"""run(config, workdir): a whole sweep, from config to the workdir files of the contract."""

import json
import os
import statistics
import time

from absl import logging
import numpy as np

from bnlab import checks
from bnlab import data as data_lib
from bnlab import engine
from bnlab import report
from bnlab import space
from bnlab import strategies


def prepare(config):
  """Checks the config and builds every trial's config; raises ConfigError before compiling."""
  specs = checks.check_sweep(config)
  checks.check_trial(config)
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


def run(config, workdir):
  """Trains the sweep of `config` and writes its workdir; returns the results."""
  specs, settings, configs = prepare(config)
  engine.enable_compilation_cache()  # $BNLAB_COMPILATION_CACHE='' turns it off.
  os.makedirs(workdir, exist_ok=True)
  report.write_text(os.path.join(workdir, 'config.json'), config.to_json_best_effort(indent=2))
  data, num_classes = data_lib.load(config.dataset)
  logging.info('%d trials on %s (%d train / %d val / %d test examples), strategy %s',
               len(configs), config.dataset.name, data['y_train'].shape[0],
               data['y_val'].shape[0], data['y_test'].shape[0], config.sweep.strategy)
  start = time.perf_counter()
  progress = Progress(len(configs))
  results = engine.train_trials(configs, list(range(len(configs))), data, num_classes,
                                config.seed, config.sweep.max_parallel, progress.on_epoch)
  for result, setting, trial_config in zip(results, settings, configs):
    result['setting'], result['config'] = setting, trial_config
  best = report.write_report(workdir, config, specs, results)
  logging.info('%d trials in %.1f s', len(results), time.perf_counter() - start)
  print(report.leaderboard(results, list(specs), config.sweep.metric, config.sweep.mode))
  if best is None:
    logging.error('every trial diverged: no best setting (try lower learning rates)')
  else:
    print(f'best: trial {best["trial"]} {config.sweep.metric}={best[config.sweep.metric]:.4f}'
          f' -> {os.path.join(workdir, "best_config.py")}')
  return results
