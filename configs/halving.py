"""Successive halving: 64 random settings, the best third go on at epochs 1 and 3, to epoch 9.

    python launch.py --config=configs/halving.py

Rungs at 1, 3 and 9 epochs: 64 -> 21 -> 7 trials, 148 member-epochs instead of random search's
576 (26%); the population shrinks between rungs, and pruned trials are reported `pruned` with the
epochs they ran. Expected: best val_accuracy 0.993 on digits with seeds 0-2, random search's
best (README, Strategies).
"""

from configs import sweep


def get_config():
  config = sweep.get_config()
  config.sweep.strategy = 'halving'
  config.sweep.num_trials = 64
  config.sweep.halving.eta = 3
  config.sweep.halving.min_epochs = 1
  config.train.epochs = 9
  return config
