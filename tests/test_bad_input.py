"""Bad input through the real launch.py: one line naming the field, exit 2, the workdir untouched.

Every case runs launch.py in its own subprocess (several at a time, started together by a module
fixture, since each spends its seconds importing JAX); each parametrized test checks one.
"""

import concurrent.futures
import glob
import os
import subprocess
import sys

import jax
import pytest

from bnlab import checks
from bnlab import memory
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
    ('unknown_space_field', ['--config.sweep.space.optimizer.lr=log_uniform(1e-3, 1e-1)'],
     "--config.sweep.space.optimizer.lr: the config has no field 'lr'"),
    ('unknown_config_field', ['--config.train.batchsize=8'],
     "--config.train.batchsize: the config has no field 'batchsize'"),
    ('not_a_number', ['--config.optimizer.learning_rate=fast'],
     "--config.optimizer.learning_rate=fast: could not convert string to float: 'fast'"),
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
  return {p: open(p, 'rb').read() for p in glob.glob(f'{workdir}/**', recursive=True)
          if os.path.isfile(p)}


def _launch(args, workdir, data_dir):
  command = [sys.executable, os.path.join(ROOT, 'launch.py'), '--config=configs/test.py',
             f'--workdir={workdir}', f'--config.dataset.data_dir={data_dir}', *args]
  return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                        check=False)


@pytest.fixture(scope='module')
def outcomes(tmp_path_factory, data_dir):
  """{case name: (completed process, workdir snapshot before, workdir)} for every case."""
  base = str(tmp_path_factory.mktemp('bad_input'))
  workdirs = {name: _workdir(base, name, data_dir) for name, _, _ in CASES}
  before = {name: _snapshot(w) for name, w in workdirs.items()}
  with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
    futures = {name: pool.submit(_launch, args, workdirs[name], data_dir)
               for name, args, _ in CASES}
  return {name: (futures[name].result(), before[name], workdirs[name]) for name in futures}


@pytest.mark.parametrize('name,args,message', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_the_workdir_untouched(
    outcomes, name, args, message):
  del args  # Run by the fixture.
  result, before, workdir = outcomes[name]
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and message in last, last
  assert not any(line.startswith('error') for line in result.stderr.splitlines()[:-1])
  assert _snapshot(workdir) == before


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
    checks.check_fields(config)
    config.sweep.unknown_knob = 1  # One field more, and the same config is refused.
    with pytest.raises(checks.ConfigError,
                       match=r'^sweep\.unknown_knob: .* sweep has: coarse_to_fine'):
      checks.check_fields(config)
