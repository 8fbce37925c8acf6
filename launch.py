"""bnlab's launcher: flags -> config and workdir -> one call into the library.

    python launch.py --config=configs/sweep.py [--config.x.y=value ...] [--workdir=runs/x]

Multi-host (every process runs the same command; on Cloud TPU VMs the three flags are detected):

    python launch.py ... --coordinator_address=HOST0:1234 --num_processes=2 --process_id=0|1
"""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TF is only the input pipeline: keep it quiet.

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/sweep.py', 'Config file.')
_WORKDIR = flags.DEFINE_string('workdir', '', 'Output folder; default runs/<config file stem>.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', '', 'host:port of process 0 for a multi-process run; "" = detect.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', 0, 'Processes of a multi-process run.')
_PROCESS_ID = flags.DEFINE_integer('process_id', -1, 'This process, 0..num_processes-1.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from bnlab import checks  # pylint: disable=import-outside-toplevel
  from bnlab import parallel  # pylint: disable=import-outside-toplevel
  from bnlab import sweep  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.config.set_visible_devices([], 'GPU')  # TF is only the input pipeline: accelerators are JAX's.
  config_file = config_flags.get_config_filename(flags.FLAGS['config'])
  workdir = _WORKDIR.value or os.path.join(
      'runs', os.path.splitext(os.path.basename(config_file))[0])
  try:
    # Joins the other processes (if any) before anything touches a device.
    parallel.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    sweep.run(_CONFIG.value, workdir)
  except checks.ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  app.run(main)
