"""Every normalization on one small CNN: a grid over model.norm, one compiled program per norm.

    python launch.py --config=configs/cnn.py

Conv(3x3) -> norm -> ReLU -> 2x2 max pool blocks of 16 and 32 channels, global average pooling
and a Dense head, on `digits`, Adam at 3e-3 for 10 epochs. `batch` (Flax) and `batch_scratch`
(bnlab's hand-derived BN) land on the same accuracy, 0.979 validation / 0.972 test (their
val losses, 0.1713 and 0.1719, differ by Adam's amplified float noise; see README), ahead of
none 0.962, layer 0.958, group 0.958 and instance 0.955. About 100 s of CPU time (six compiled
programs, one per norm).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model.name = 'cnn'
  config.model.widths = (16, 32)
  config.model.groups = 4  # For `group`: 4 groups of 4 and of 8 channels.
  config.optimizer.learning_rate = 3e-3
  config.train.epochs = 10
  config.sweep.strategy = 'grid'
  config.sweep.space.model.norm = (
      "grid('batch', 'batch_scratch', 'layer', 'group', 'instance', 'none')")
  return config
