"""Hyperband: brackets of successive halving from wide-and-short to narrow-and-long.

    python launch.py --config=configs/hyperband.py

configs/sweep.py's space, train.epochs = 9 (the paper's R) and eta = 3: three brackets, 9 trials
from 1 epoch (9 -> 3 -> 1 at epochs 1, 3, 9), 5 from 3 epochs (5 -> 1 at 3, 9) and 3 trained
to 9 epochs: 17 trials and 69 member-epochs, printed as a table when it starts. Each rung of
each bracket trains as one program per shape. Expected on digits: best val_accuracy 0.986
(trial 15), in about 70 s on 2 CPU cores with an empty compilation cache.
"""

from configs import sweep


def get_config():
  config = sweep.get_config()
  config.sweep.strategy = 'hyperband'
  config.sweep.hyperband.eta = 3
  config.sweep.hyperband.min_epochs = 1
  config.train.epochs = 9
  return config
