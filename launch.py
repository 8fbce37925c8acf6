"""bnlab's launcher: flags -> config and workdir -> one call into the library.

    python launch.py --config=configs/sweep.py [--config.x.y=value ...] [--workdir=runs/x]

Running the same command again resumes an interrupted sweep. Exit status: 0 done (or already
complete), 1 every trial diverged, 2 a bad config, flag or workdir, a full disk or a dataset that
cannot be downloaded (one line on stderr; after a full disk, the same command resumes).

Multi-host (every process runs the same command; on Cloud TPU VMs the three flags are detected):

    python launch.py ... --coordinator_address=HOST0:1234 --num_processes=2 --process_id=0|1
"""

import gc
import logging
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TF is only the input pipeline: keep it quiet.
# JAX says at INFO, at each start, that it found no TPU library ("Unable to initialize backend
# 'tpu'") on every machine without one. A platform that the user asks for and that fails still
# raises, and JAX's warnings (a GPU without CUDA jaxlib) still print.
logging.getLogger('jax._src.xla_bridge').setLevel(logging.WARNING)

from absl import app
from absl import flags
from ml_collections import config_flags

from bnlab import errors
from bnlab import prechecks
from bnlab import records

DEFAULT_CONFIG = 'configs/sweep.py'
_CONFIG = config_flags.DEFINE_config_file('config', DEFAULT_CONFIG, 'Config file.')
_WORKDIR = flags.DEFINE_string(
    'workdir', '', 'Output folder, local or gs://BUCKET/PATH; default runs/<config file stem>.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', '', 'host:port of process 0 for a multi-process run; "" = detect.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', 0, 'Processes of a multi-process run.')
_PROCESS_ID = flags.DEFINE_integer('process_id', -1, 'This process, 0..num_processes-1.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Delete an existing workdir, start afresh.')


def fail(message):
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def parse_flags(argv):
  """absl's flag parsing, with a bad flag, config file or override as one line and exit status 2."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    problem = errors.config_file_problem(e, errors.config_path(argv, DEFAULT_CONFIG))
    if problem:  # Raised in the config file (or a module it imports), or its syntax error.
      fail(f'--config: cannot load the config file: {problem}')
    if isinstance(e, flags.Error):
      fail(errors.flag_problem(e))
    if isinstance(e, OSError):  # config_flags: the config file failed to load.
      fail(f'--config: cannot load the config file: {str(e).strip().splitlines()[-1].strip()}')
    if isinstance(e, (KeyError, AttributeError)):  # An override of a field not in the config.
      fail(errors.unknown_field_problem(e, argv))
    raise


def main(argv):
  if len(argv) > 1:
    fail(f'unexpected arguments {" ".join(argv[1:])}: every setting is a flag, '
         '--name=value (--config.x.y=value for a config field)')
  from bnlab import files  # pylint: disable=import-outside-toplevel
  from bnlab import integrity  # pylint: disable=import-outside-toplevel
  workdir = _WORKDIR.value or files.default_workdir(
      config_flags.get_config_filename(flags.FLAGS['config']))
  if not files.supported(workdir):
    fail(f'--workdir={workdir}: unsupported location; valid: a local folder or '
         'gs://BUCKET/PATH')
  problem = errors.local_workdir_problem(workdir) if files.is_local(workdir) else ''
  # A finished workdir made read-only to keep it is fine: a rerun only says it is complete.
  if problem and (_OVERWRITE.value or not integrity.completion(workdir).finished):
    fail(f'--workdir={workdir}: {problem}')
  missing = files.missing_packages(workdir)
  if missing:
    fail(f'--workdir={workdir} needs packages that are not installed: '
         f'pip install {" ".join(missing)}')
  try:
    try:
      # A typo in a name or a spec, refused before JAX's, Flax's and TFDS's imports (seconds).
      prechecks.check_config(_CONFIG.value)
    except OSError as e:  # config_flags defers a config file that failed to load to here.
      fail(f'--config: cannot load the config file: {str(e).strip().splitlines()[-1].strip()}')
    from bnlab import checks  # pylint: disable=import-outside-toplevel
    from bnlab import parallel  # pylint: disable=import-outside-toplevel
    from bnlab import worker  # pylint: disable=import-outside-toplevel
    checks.check_config(_CONFIG.value)  # Before any data or compile: a typo costs no more.
    if not _OVERWRITE.value:
      checks.check_workdir(_CONFIG.value, workdir)
    # Joins the other processes (if any) before anything touches a device.
    parallel.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    if parallel.is_writer() and (_OVERWRITE.value or not integrity.completion(workdir).finished):
      # The report's worker (bnlab/worker.py) does its seconds of imports beside the sweep's
      # own from here on, rather than from sweep.run's start (BENCHMARKS.md, entry 20).
      worker.start()
    from bnlab import sweep  # pylint: disable=import-outside-toplevel
    # The modules imported so far live to the exit: the collector need not scan them again at
    # each full collection (with the freeze below, ~1 s of a 10 s sweep; BENCHMARKS.md).
    gc.freeze()
    results = sweep.run(_CONFIG.value, workdir, overwrite=_OVERWRITE.value)
  except records.ConfigError as e:  # checks.ConfigError, also raised before checks' import.
    fail(e)
  except Exception as e:  # pylint: disable=broad-except
    problem = errors.write_problem(e, workdir)  # A full disk, a read-only file system, anywhere.
    if not problem:
      raise
    fail(problem)
  except KeyboardInterrupt:
    print(f'error: stopped (Ctrl-C); run the same command again to resume {workdir} from its '
          'last checkpoint', file=sys.stderr)
    sys.exit(130)
  gc.freeze()  # Nor at the exit, which would collect what the process's end frees anyway.
  if results and all(r.status == records.DIVERGED for r in results):
    sys.exit(1)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
