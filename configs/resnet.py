"""BN momentum swept inside one ResNet program, evaluated with precise BN to show the gap.

    python launch.py --config=configs/resnet.py

A ResNet (3x3 stem, two stages of 16 and 32 channels, `model.depth`=1 residual block each) with
batch norm on `digits`; 8 random settings of the learning rate and of BN's momentum (one
compiled program: momentum is a per-member number). Evaluation uses statistics recomputed over
the training set after each epoch (`model.bn_eval='precise'`); `val_accuracy_running` in
best.json and history.jsonl is the same model evaluated with its running averages.

Expected (seed 0, about 120 s of CPU time): precise-BN validation accuracy 0.965-0.993 for all
8, best 0.993 (test 0.997) at momentum 0.998. The gap is the lesson: 5 epochs are 90 steps, so
the three trials with momentum >= 0.997 still carry most of their initial running averages and
score 0.28-0.36 with them, while momentum <= 0.985 keeps the running averages within 0.01-0.03
of precise BN.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model.name = 'resnet'
  config.model.widths = (16, 32)
  config.model.depth = 1
  config.model.bn_eval = 'precise'  # running | batch | precise
  config.train.epochs = 5
  config.sweep.num_trials = 8
  space = config.sweep.space
  space.optimizer.learning_rate = 'log_uniform(1e-3, 1e-2)'
  # 0.5 forgets within a few steps; 0.999 remembers ~1000 steps, more than 5 epochs' 90.
  space.model.bn_momentum = 'one_minus_log_uniform(0.5, 0.999)'
  return config
