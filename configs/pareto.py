"""Two objectives: the most accurate model for its size, a Pareto front of 64 random trials.

    python launch.py --config=configs/pareto.py

A trial is on the front when no other trial is both at least as accurate and at most as large
(and better in one). results.csv gets each trial's param_count, flops_per_example,
seconds_per_epoch and pareto_rank; pareto.csv the front's rows; pareto/trial_<id>.py trains a
front trial alone; the report plots the front. best_config.py stays the most accurate trial.
Expected on `digits`: ~30 s on 2 cores; 4 of the 64 trials on the front, from 1,226 parameters at
val_accuracy 0.9756 to 26,378 at 0.9965 (the most accurate; no (256, 256) trial is on it).
Any of the cost metrics, or val_loss, can be an objective, e.g.

    python launch.py --config=configs/pareto.py \
        --config.sweep.objectives='val_accuracy:max, flops_per_example:min, seconds_per_epoch:min'

(grid, random, quasirandom and tpe rank by the front; tpe then asks Optuna's multi-objective TPE.)
"""

from configs import default


def get_config():
  config = default.get_config()
  config.sweep.num_trials = 64
  config.train.epochs = 10
  config.sweep.objectives = 'val_accuracy:max, param_count:min'
  space = config.sweep.space
  space.optimizer.learning_rate = 'log_uniform(1e-4, 1e-1)'
  space.model.bn_momentum = 'one_minus_log_uniform(0.5, 0.99)'
  space.model.widths = 'choice((16,), (32,), (64, 64), (128, 128), (256, 256))'
  return config
