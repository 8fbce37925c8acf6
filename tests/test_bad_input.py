"""Bad input through the real launch.py: one line naming the field, exit 2, the workdir untouched.

Every case runs launch.py in its own subprocess (several at a time, started together by a module
fixture, since each spends its seconds importing JAX); each parametrized test checks one. What a
test cannot make real (a full disk, a read-only file system as root, no network) is made by a
few lines of Python that the launch's process runs before launch.py (RUN_LAUNCH).
"""

import concurrent.futures
import dataclasses
import glob
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from bnlab import checks
from bnlab import data as data_lib
from bnlab import memory
from bnlab import prechecks
from bnlab import programs
from bnlab import space
from bnlab import sweep
from tests.conftest import ROOT
from tests.conftest import create_population

# (name, extra flags, text the one-line message must contain)
CASES = [
    ('unknown_optimizer', ['--config.optimizer.name=adm'],
     "optimizer.name='adm' is not one of: sgd, momentum, rmsprop, adam, adamw"),
    ('unknown_norm', ['--config.model.norm=batchnorm'], "model.norm='batchnorm' is not one of"),
    ('unknown_activation', ['--config.model.activation=gelu'],
     "model.activation='gelu' is not one of: relu, sigmoid, tanh"),
    ('unknown_dataset', ['--config.dataset.name=mnistt'],
     "dataset.name='mnistt' is not a known dataset; use one of digits, fashion_mnist"),
    ('unknown_strategy', ['--config.sweep.strategy=bayes'], "sweep.strategy='bayes' is not one of"),
    ('unknown_metric', ['--config.sweep.metric=accuracy'], "sweep.metric='accuracy' is not one of"),
    ('unknown_mode', ['--config.sweep.mode=maximize'], "sweep.mode='maximize' is not one of"),
    ('unknown_objective', ['--config.sweep.objectives=val_accuracy:max,size:min'],
     "sweep.objectives='val_accuracy:max,size:min': unknown metric 'size'; valid: val_accuracy"),
    ('objectives_on_halving', ['--config.sweep.objectives=val_accuracy:max,param_count:min',
                               '--config.sweep.strategy=halving'],
     "sweep.strategy='halving' ranks by one metric; a Pareto front works with grid, random"),
    ('unknown_space_field', ['--config.sweep.space.optimizer.lr=log_uniform(1e-3, 1e-1)'],
     "--config.sweep.space.optimizer.lr: the config has no field 'lr'"),
    ('unknown_config_field', ['--config.train.batchsize=8'],
     "--config.train.batchsize: the config has no field 'batchsize'"),
    ('not_a_number', ['--config.optimizer.learning_rate=fast'],
     "--config.optimizer.learning_rate=fast: must be a float (could not convert string to float: "
     "'fast')"),
    ('bool_for_an_int', ['--config.train.epochs=True'],  # A config file's: test_safety.py.
     "--config.train.epochs=True: must be a int (invalid literal for int() with base 10: "
     "'True')"),
    ('empty_dataset_name', ['--config.dataset.name='],
     "dataset.name='' must be one of digits, fashion_mnist (offline) or a TFDS "
     'image-classification name such as mnist, cifar10'),
    ('zero_trials', ['--config.sweep.num_trials=0'], 'sweep.num_trials=0 must be a int >= 1'),
    ('zero_batch', ['--config.train.batch_size=0'], 'train.batch_size=0 must be a int >= 1'),
    ('zero_epochs', ['--config.train.epochs=0'], 'train.epochs=0 must be a int >= 1'),
    ('zero_max_parallel', ['--config.sweep.max_parallel=0'], 'sweep.max_parallel=0 must be'),
    ('negative_checkpoint_every', ['--config.train.checkpoint_every=-1'],
     'train.checkpoint_every=-1 must be a int >= 0'),
    ('val_fraction_above_1', ['--config.dataset.val_fraction=1.5'],
     'dataset.val_fraction=1.5 must lie in (0, 1)'),
    ('val_fraction_0', ['--config.dataset.val_fraction=0'],
     'dataset.val_fraction=0.0 must lie in (0, 1)'),
    ('negative_learning_rate', ['--config.optimizer.learning_rate=-0.1'],
     'optimizer.learning_rate=-0.1 must lie in (0, inf)'),
    ('b1_above_1', ['--config.optimizer.b1=1.5'], 'optimizer.b1=1.5 must lie in [0, 1)'),
    ('log_bound_0', ['--config.sweep.space.optimizer.learning_rate=log_uniform(0, 1e-1)'],
     "sweep.space.optimizer.learning_rate='log_uniform(0, 1e-1)': log_uniform bounds must be > 0"),
    ('reversed_bounds', ['--config.sweep.space.optimizer.learning_rate=log_uniform(1e-1, 1e-3)'],
     'low must be below high'),
    ('one_minus_outside', ['--config.sweep.space.optimizer.b2=one_minus_log_uniform(0.9, 1.5)'],
     'one_minus_log_uniform bounds must lie in (0, 1)'),
    ('malformed_spec', ['--config.sweep.space.optimizer.learning_rate=log_uniform(1e-3 1e-1)'],
     'arguments must be Python literals'),
    ('unknown_spec', ['--config.sweep.space.optimizer.learning_rate=normal(0, 1)'],
     "sweep.space.optimizer.learning_rate='normal(0, 1)' is not a spec"),
    ('numeric_spec_on_widths', ['--config.sweep.space.model.widths=int_uniform(8, 16)'],
     'sweep.space.model.widths: int_uniform is numeric but model.widths is tuple'),
    ('empty_widths', ['--config.model.widths=()'], 'model.widths=() must be a non-empty tuple'),
    ('spec_reaching_negative', ['--config.sweep.space.optimizer.learning_rate=uniform(-1, 1)'],
     'optimizer.learning_rate=-1.0 must lie in (0, inf)'),
    ('choice_of_unknown_norm', ["--config.sweep.space.model.norm=choice('batch', 'btch')"],
     "model.norm='btch' is not one of"),
    ('choice_of_widths_not_tuples', ['--config.sweep.space.model.widths=choice(8, 16)'],
     '8 is not a tuple like model.widths=(16, 16)'),
    ('groups_not_dividing', ['--config.model.norm=group', '--config.model.groups=5'],
     'model.groups=5 must divide every width of model.widths=(16, 16)'),
    ('missing_config_file', ['--config=configs/nope.py'],
     "--config: cannot load the config file: [Errno 2] No such file or directory: "
     "'configs/nope.py'"),
    ('renamed_strategy_field', ['--config.sweep.strategy=halving', '--config.sweep.eta=2'],
     'sweep.eta is now sweep.halving.eta: set --config.sweep.halving.eta instead'),
    ('renamed_pbt_field', ['--config.sweep.pbt_interval=2'],
     'sweep.pbt_interval is now sweep.pbt.interval'),
    ('another_config_on_the_workdir', ['--config.train.epochs=3'],
     'holds a sweep of another config: train.epochs was 2, now 3; rerun with --overwrite'),
]


def _workdir(base, name, data_dir):
  """A workdir holding a sweep of configs/test.py (its config.json and a results file)."""
  from configs import test as test_config  # pylint: disable=import-outside-toplevel
  config = test_config.get_config()
  config.dataset.data_dir = data_dir
  workdir = os.path.join(base, name)
  os.makedirs(workdir)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2))
  with open(os.path.join(workdir, 'results.csv'), 'w') as f:
    f.write('trial\n0\n')
  return workdir


def _snapshot(workdir):
  return {p: open(p, 'rb').read()
          for p in glob.glob(f'{workdir}/**', recursive=True, include_hidden=True)
          if os.path.isfile(p)}


# Runs launch.py as `python launch.py ARGV` would, after a prelude (a test's stand-in for the
# world) that sees WORKDIR.
RUN_LAUNCH = """
import runpy, sys
sys.argv = ['launch.py'] + {argv!r}
runpy.run_path('launch.py', run_name='__main__')
"""


def _launch(args, workdir, data_dir, config='configs/test.py', prelude=''):
  argv = [f'--config={config}', f'--workdir={workdir}', f'--config.dataset.data_dir={data_dir}',
          *args]
  command = [sys.executable, os.path.join(ROOT, 'launch.py'), *argv]
  if prelude:
    command = [sys.executable, '-c',
               f'WORKDIR = {workdir!r}\n{prelude}\n{RUN_LAUNCH.format(argv=argv)}']
  return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                        check=False)


_FAILING_WRITES = """
import errno, os
from bnlab import files
def fail(path, *args, **kwargs):
  raise {error}
files.write_text = files.write_bytes = fail
"""
DISK_FULL = _FAILING_WRITES.format(
    error='OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))')
# tensorstore, under Orbax, says it in its message, of another type than OSError.
DISK_FULL_IN_TENSORSTORE = _FAILING_WRITES.format(
    error="ValueError(f'INTERNAL: Error writing local file {path}: [OS error 28: No space left "
          "on device]')")
READ_ONLY_FILE_SYSTEM = _FAILING_WRITES.format(
    error='OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))')
# As for a user without write permission on WORKDIR (root has it on every folder, chmod or not).
READ_ONLY_WORKDIR = """
import os
_access = os.access
def access(path, mode, *args, **kwargs):
  if os.path.abspath(path) == WORKDIR and mode & os.W_OK:
    return False
  return _access(path, mode, *args, **kwargs)
os.access = access
"""
# No network: every TCP connection fails as on a machine that is offline (local sockets work).
OFFLINE = """
import errno, os, socket
_connect = socket.socket.connect
def connect(self, address):
  if self.family in (socket.AF_INET, socket.AF_INET6):
    raise OSError(errno.ENETUNREACH, os.strerror(errno.ENETUNREACH))
  return _connect(self, address)
socket.socket.connect = connect
"""

STRING_FOR_A_FLOAT = """from configs import test


def get_config():
  config = test.get_config()
  config.optimizer.learning_rate = 'fast'
  return config
"""


@dataclasses.dataclass(frozen=True)
class Case:
  """A bad input beyond a flag: `message` holds fragments of the one line, with {workdir} and
  {config} (the config file's path) filled in."""
  name: str
  message: tuple[str, ...]
  args: tuple[str, ...] = ()
  config_text: str = ''  # A config file of this text instead of configs/test.py.
  prelude: str = ''  # Python the launch's process runs first.
  fresh: bool = False  # No workdir yet: the launch must not leave one.


MORE_CASES = [
    Case('config_raises', ('--config: cannot load the config file: {config}:2: RuntimeError: no '
                           'config today',),
         config_text="def get_config():\n  raise RuntimeError('no config today')\n"),
    Case('config_syntax_error', ('--config: cannot load the config file: {config}:1: '
                                 'SyntaxError: invalid syntax',),
         config_text='def get_config(:\n  pass\n'),
    Case('config_string_for_a_float', (
        "--config: cannot load the config file: {config}:6: config.optimizer.learning_rate = "
        "'fast': learning_rate must be a float, not a str",), config_text=STRING_FOR_A_FLOAT),
    Case('disk_full', ('the disk is full: cannot write {workdir}/', '(No space left on device); '
                       'free some space, then run the same command again to resume {workdir} '
                       'from its last checkpoint'), prelude=DISK_FULL),
    Case('disk_full_in_tensorstore', ('the disk is full: cannot write {workdir} (INTERNAL: ',
                                      'No space left on device', 'run the same command again'),
         prelude=DISK_FULL_IN_TENSORSTORE),
    Case('read_only_file_system', ('cannot write {workdir}/', '(Read-only file system); make '
                                   'workdir {workdir} writable or choose another --workdir'),
         prelude=READ_ONLY_FILE_SYSTEM),
    Case('read_only_workdir', ('--workdir={workdir}: {workdir} is not writable; make it writable '
                               '(chmod u+w) or choose another --workdir',),
         prelude=READ_ONLY_WORKDIR),
    Case('offline_download', (
        "dataset.name='mnist' is not in ", 'storage.googleapis.com cannot be reached (offline?); '
        "without a network use digits, or fashion_mnist from its four IDX files in "
        'dataset.manual_dir'), args=('--config.dataset.name=mnist',), prelude=OFFLINE,
         fresh=True),
]


def _run_more(pool, base, data_dir, case):
  """Sets up and launches `case`: (its future, the workdir's snapshot before, workdir, config)."""
  workdir = os.path.join(base, case.name) if case.fresh else _workdir(base, case.name, data_dir)
  config = 'configs/test.py'
  if case.config_text:
    config = os.path.join(base, f'{case.name}.py')
    with open(config, 'w') as f:
      f.write(case.config_text)
  before = _snapshot(workdir)
  future = pool.submit(_launch, list(case.args), workdir, data_dir, config, case.prelude)
  return future, before, workdir, config


@pytest.fixture(scope='module')
def outcomes(tmp_path_factory, data_dir):
  """{case name: (completed process, workdir snapshot before, workdir, config file)} for every
  case of CASES and MORE_CASES."""
  base = str(tmp_path_factory.mktemp('bad_input'))
  data_lib.load_numpy('digits', data_dir)  # Built once here: cases that load it run at once.
  workdirs = {name: _workdir(base, name, data_dir) for name, _, _ in CASES}
  before = {name: _snapshot(w) for name, w in workdirs.items()}
  with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
    futures = {name: pool.submit(_launch, args, workdirs[name], data_dir)
               for name, args, _ in CASES}
    more = {case.name: _run_more(pool, base, data_dir, case) for case in MORE_CASES}
  done = {name: (futures[name].result(), before[name], workdirs[name], '') for name in futures}
  done.update({name: (future.result(), *rest) for name, (future, *rest) in more.items()})
  return done


def _one_error_line(result):
  """The launch's one error line, after checking that it is one, with exit status 2."""
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: '), last
  assert not any(line.startswith('error') for line in result.stderr.splitlines()[:-1])
  return last


@pytest.mark.parametrize('name,args,message', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_the_workdir_untouched(
    outcomes, name, args, message):
  del args  # Run by the fixture.
  result, before, workdir, _ = outcomes[name]
  last = _one_error_line(result)
  assert message in last, last
  assert _snapshot(workdir) == before


@pytest.mark.parametrize('case', MORE_CASES, ids=[c.name for c in MORE_CASES])
def test_a_bad_config_file_disk_workdir_or_network_is_one_line_and_changes_nothing(
    outcomes, case):
  result, before, workdir, config = outcomes[case.name]
  last = _one_error_line(result)
  for fragment in case.message:
    assert fragment.format(workdir=workdir, config=config) in last, last
  assert _snapshot(workdir) == before
  if case.fresh:
    assert not os.path.exists(workdir)


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into a read-only folder all the same')
def test_a_workdir_in_a_read_only_folder_is_one_line(tmp_path, data_dir):
  parent = tmp_path / 'shared'
  parent.mkdir()
  parent.chmod(0o555)
  try:
    result = _launch([], str(parent / 'run'), data_dir)
  finally:
    parent.chmod(0o755)
  assert _one_error_line(result) == (
      f'error: --workdir={parent / "run"}: {parent} is not writable; make it writable '
      '(chmod u+w) or choose another --workdir')
  assert not os.listdir(parent)


def test_a_finished_workdir_kept_read_only_is_still_just_complete(config, tmp_path, data_dir):
  workdir = str(tmp_path / 'finished')
  config.sweep.num_trials, config.train.epochs = 2, 1
  sweep.run(config, workdir)
  before = _snapshot(workdir)
  result = _launch(['--config.sweep.num_trials=2', '--config.train.epochs=1'], workdir, data_dir,
                   prelude=READ_ONLY_WORKDIR)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'is complete: nothing to train' in result.stdout
  assert _snapshot(workdir) == before


@pytest.mark.parametrize('name', [' ', 'x y', '../x', '1', 'a/b/c'])
def test_a_dataset_name_that_is_no_name_at_all_is_refused(config, name):
  config.dataset.name = name
  with pytest.raises(checks.ConfigError, match=r'is not a known dataset; use one of digits'):
    checks.check_dataset(config)


def test_a_config_file_that_replaces_a_section_is_type_checked_too(config):
  # Assigning a whole section escapes ml_collections' own type check on each field.
  config.optimizer = ml_collections.ConfigDict(
      {**config.optimizer.to_dict(), 'learning_rate': 'fast'})
  with pytest.raises(checks.ConfigError, match=r"^optimizer\.learning_rate='fast' must be a "
                                                r"float like configs/default\.py's 0\.001$"):
    checks.check_config(config)


def test_the_offline_check_probes_the_download_hosts_or_their_proxy(monkeypatch, tmp_path):
  builder = tfds.builder('mnist', data_dir=str(tmp_path))
  for name in ('no_proxy', 'NO_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY'):
    monkeypatch.delenv(name, raising=False)
  assert data_lib.download_hosts(builder) == [('storage.googleapis.com', 443)]
  monkeypatch.setenv('https_proxy', 'http://proxy.example:3128')
  assert data_lib.download_hosts(builder) == [('proxy.example', 3128)]
  assert not os.listdir(tmp_path)  # Looking changed nothing in the data dir.


def test_there_are_at_least_20_cases():
  assert len(CASES) >= 20 and len({c[0] for c in CASES}) == len(CASES)


def test_one_member_that_does_not_fit_is_an_error_not_an_out_of_memory_crash(config, digits):
  data, num_classes = digits
  configs = sweep.corner_configs(config, sweep.prepare(config))  # One per width.
  assert len(configs) == 2
  shapes = programs.data_shapes(data)
  data_bytes = sum(v.nbytes for v in data.values())
  sizes = memory.member_bytes(configs[0], num_classes, shapes)
  with pytest.raises(checks.ConfigError, match='members need'):
    memory.fit_parallel(configs, shapes, num_classes, 4, budget=data_bytes + sizes['total'])
  assert memory.fit_parallel(configs, shapes, num_classes, 4, budget=2**40) == 4
  largest = max(memory.member_bytes(c, num_classes, shapes)['total'] for c in configs)
  assert memory.fit_parallel(configs, shapes, num_classes, 4,
                             budget=data_bytes + 3 * largest) == 3


def test_the_state_estimate_is_the_bytes_of_a_real_member(config, digits):
  data, num_classes = digits
  configs = [space.with_overrides(config, {'optimizer.learning_rate': lr}) for lr in (0.1, 0.01)]
  population = create_population(configs, [0, 1], data, num_classes, 0)
  actual = sum(a.nbytes for a in jax.tree.leaves(population.state)) // 2
  sizes = memory.member_bytes(configs[0], num_classes, programs.data_shapes(data))
  assert sizes['state'] == actual



TYPO_CONFIG = '''from configs import test


def get_config():
  config = test.get_config()
  config.optimizer.lerning_rate = 0.1
  return config
'''


def test_a_config_file_with_an_unknown_field_is_refused(tmp_path, data_dir):
  path = tmp_path / 'typo.py'
  path.write_text(TYPO_CONFIG)
  workdir = tmp_path / 'workdir'
  result = subprocess.run(  # Not _launch: a second --config would define its overrides twice.
      [sys.executable, os.path.join(ROOT, 'launch.py'), f'--config={path}',
       f'--workdir={workdir}', f'--config.dataset.data_dir={data_dir}'],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  from configs import default  # pylint: disable=import-outside-toplevel
  valid = ', '.join(sorted(default.get_config().optimizer))
  assert result.stderr.strip().splitlines()[-1] == (
      'error: optimizer.lerning_rate: configs/default.py defines no such field; optimizer has: '
      + valid)
  assert not workdir.exists()


@pytest.mark.parametrize('path', sorted(glob.glob(os.path.join(ROOT, 'configs', '*.py'))))
def test_every_shipped_config_defines_only_known_fields(path):
  module = os.path.splitext(os.path.basename(path))[0]
  config_module = __import__(f'configs.{module}', fromlist=['get_config'])
  if hasattr(config_module, 'get_config'):
    config = config_module.get_config()
    prechecks.check_fields(config)
    config.sweep.unknown_knob = 1  # One field more, and the same config is refused.
    with pytest.raises(checks.ConfigError,
                       match=r'^sweep\.unknown_knob: .* sweep has: ask, coarse_to_fine'):
      prechecks.check_fields(config)


def test_the_epoch_calls_are_counted_on_two_or_more_cpu_devices_only():
  # Fashion-MNIST's shapes: 48,000 training examples in batches of 64, 12,000 validation ones.
  shapes = (((48000, 28, 28, 1), np.float32), ((48000,), np.int32),
            ((12000, 28, 28, 1), np.float32), ((12000,), np.int32),
            ((10000, 28, 28, 1), np.float32), ((10000,), np.int32))
  state = 3 * 2**20  # A block holds 4 MiB of state and gradients: one such member alone.
  calls = 48000 // 64 + 12  # Steps, and validation chunks of member.EVAL_CHUNK.
  assert programs.member_block(2**31, 2 * state, 'cpu') == programs.MIN_MEMBERS
  assert memory.epoch_call_bytes(state, 64, shapes, 'cpu', 2) == (
      memory.CPU_CALL_BYTES * calls // programs.MIN_MEMBERS)
  small = 2**18  # Eight such members to a block: an eighth of the block's calls each.
  assert memory.epoch_call_bytes(small, 64, shapes, 'cpu', 4) == memory.CPU_CALL_BYTES * calls // 8
  assert memory.epoch_call_bytes(state, 64, shapes, 'cpu', 1) == 0
  assert memory.epoch_call_bytes(state, 64, shapes, 'gpu', 2) == 0


def test_the_plan_counts_the_data_on_each_local_device_and_this_processs_share_of_members(
    monkeypatch):
  sizes = {'total': 10}
  assert jax.local_device_count() == 1  # The tests' one CPU device.
  assert memory.planned_bytes(sizes, 8, 1000) == 1000 + 8 * 10
  monkeypatch.setattr(memory.jax, 'device_count', lambda: 4)  # Three other processes' devices.
  assert memory.planned_bytes(sizes, 8, 1000) == 1000 + 2 * 10
