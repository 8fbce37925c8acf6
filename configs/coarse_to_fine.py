"""Coarse-to-fine: three rounds, each sampling inside the box of the previous round's best.

    python launch.py --config=configs/coarse_to_fine.py

64 settings of configs/sweep.py's space over 3 rounds (22, 21, 21); round 2 and 3 sample (Sobol)
the box in each spec's own scale spanned by the top quarter of the round before, never outside
the space. Expected: best val_accuracy 0.990-0.997 on digits with seeds 0-2 (README, Strategies).
"""

from configs import sweep


def get_config():
  config = sweep.get_config()
  config.sweep.strategy = 'coarse_to_fine'
  config.sweep.num_trials = 64
  config.sweep.coarse_to_fine.rounds = 3
  config.sweep.coarse_to_fine.top_fraction = 0.25
  config.train.epochs = 9
  return config
