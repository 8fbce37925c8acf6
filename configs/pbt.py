"""Population based training: 64 members, every 2 epochs the worst quarter copies the best.

    python launch.py --config=configs/pbt.py

Learning rate, Adam's b2 and BN momentum are explored (x0.8 / x1.2 or redrawn); widths split the
members into two populations. Writes plots/pbt_schedules.png, each member's hyperparameters over
epochs; history.jsonl has them per epoch. best_config.py holds the winner's FINAL values, not
its schedule. Expected: best val_accuracy 0.993 on digits with seeds 0-2 (README, Strategies).
"""

from configs import sweep


def get_config():
  config = sweep.get_config()
  config.sweep.strategy = 'pbt'
  config.sweep.num_trials = 64
  config.sweep.pbt.interval = 2
  config.sweep.pbt.quantile = 0.25
  config.train.epochs = 9
  return config
