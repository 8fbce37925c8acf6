"""The caviar way: a random search of 128 settings trained side by side in one program.

    python launch.py --config=configs/sweep.py

Learning rate log-uniform, Adam's b2 sampled as 1-b2 log-uniform, BN momentum likewise, and two
MLP shapes (one compiled program each). On a quiet 2-core CPU the command takes ~16 s (~11 s with
a warm compilation cache); the best validation accuracy on `digits` is 0.9895 (median trial
0.974). Override anything, e.g.

    python launch.py --config=configs/sweep.py --config.sweep.num_trials=256 \
        --config.sweep.space.model.bn_momentum=''
"""

from configs import default


def get_config():
  config = default.get_config()
  config.sweep.num_trials = 128
  config.train.epochs = 10
  space = config.sweep.space
  space.optimizer.learning_rate = 'log_uniform(1e-4, 1e-1)'
  space.optimizer.b2 = 'one_minus_log_uniform(0.9, 0.9999)'
  space.model.bn_momentum = 'one_minus_log_uniform(0.5, 0.99)'
  space.model.widths = 'choice((128, 128, 128), (256, 256))'
  return config
