"""A tiny sweep for the tests: two shapes, a few settings, two epochs.

    python launch.py --config=configs/test.py --workdir=/tmp/bnlab_test
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model.widths = (16, 16)
  config.train.epochs = 2
  config.train.batch_size = 32
  config.sweep.num_trials = 6
  config.sweep.max_parallel = 4
  space = config.sweep.space
  space.optimizer.learning_rate = 'log_uniform(1e-3, 1e-1)'
  space.model.bn_momentum = 'one_minus_log_uniform(0.5, 0.99)'
  space.model.widths = 'choice((16, 16), (8,))'
  return config
