"""The panda way: one model, babysat. More epochs, its progress bar (a line per epoch when piped)
to watch it learn.

    python launch.py --config=configs/panda.py

One MLP with batch norm on `digits` for 30 epochs; ~0.97-0.98 validation accuracy in seconds.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.train.epochs = 30
  config.sweep.num_trials = 1
  return config
