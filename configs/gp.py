"""Gaussian-process Bayesian optimisation with Optuna's GPSampler: 64 trials asked 16 at a time,
each batch one program.

    python launch.py --config=configs/gp.py

The first batch is the sampler's random start-up (its first 10 complete trials); each later batch
is asked after the previous ones were told their val_accuracy, the trials of a batch kept apart by
q-batch expected improvement (bnlab/strategies/gp.py). Expected on `digits`: best validation
accuracy 0.9965 (four trials tie; test 0.9889), the whole command ~66 s on a quiet 2-core CPU
(56 s of it the 64 trials, the GP's fits and asks between batches included).
"""

from configs import sweep


def get_config():
  config = sweep.get_config()
  config.sweep.strategy = 'gp'
  config.sweep.num_trials = 64
  config.sweep.gp.batch_size = 16
  config.train.epochs = 9
  return config
