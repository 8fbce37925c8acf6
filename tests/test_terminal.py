"""What a run shows: its terminal lines, a typo refused before the heavy imports, and TensorBoard
hparams that tell one sweep from another (#21 items 1, 8, 9).

A config typo is refused by bnlab.prechecks before launch.py imports JAX, Flax, TFDS or
matplotlib: `python -X importtime` lists every module a run imported, so the test reads what was
imported when the error was printed, with no clock. The names there are tied to the registries
they copy.
"""

import ast
import importlib
import logging
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from bnlab import checks
from bnlab import data
from bnlab import models
from bnlab import monitor
from bnlab import optim
from bnlab import prechecks
from bnlab import records
from bnlab import space
from bnlab import validate
from bnlab import strategies
from bnlab.strategies import asked
from bnlab.strategies import pruning
from bnlab import sweep
from configs import default as default_config
from configs import sweep as sweep_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ('jax', 'flax', 'optax', 'tensorflow', 'tensorflow_datasets', 'matplotlib', 'orbax')
# As the shell passes them.
TYPOS = ['--config.sweep.strategy=randm', '--config.model.norm=btach',
         '--config.sweep.space.optimizer.learning_rate=log_unifrm(1e-4,1)',
         "--config.sweep.space.model.norm=choice('batch','btach')",
         '--config.optimizer.name=adma', '--config.sweep.metric=val_acc',
         '--config.dataset.scaling=minmx', '--config.sweep.pruner=medain',
         '--config.sweep.ask=slott', '--config.sweep.select=bst',
         # Numbers, a strategy's section among them (checked whichever strategy runs).
         '--config.train.batch_size=0', '--config.optimizer.learning_rate=-1',
         '--config.dataset.val_fraction=1.5', '--config.sweep.pbt.quantile=0.9',
         '--config.sweep.halving.eta=1', '--config.sweep.num_trials=0',
         '--config.model.norm=group --config.model.groups=7']  # A width it cannot divide.


def test_prechecks_names_are_the_registries():
  registries = {
      'sweep.strategy': strategies.STRATEGIES, 'sweep.metric': checks.METRICS,
      'model.name': models.MODELS, 'model.norm': models.NORMS,
      'model.activation': models.ACTIVATIONS, 'model.bn_eval': checks.BN_EVALS,
      'optimizer.name': optim.OPTIMIZERS, 'optimizer.schedule': optim.SCHEDULES,
      'dataset.scaling': data.SCALINGS, 'sweep.select': records.SELECTS,
      'sweep.pruner': pruning.PRUNERS, 'sweep.ask': asked.ASKS}
  for field, registry in registries.items():
    assert prechecks.NAMES[field] == tuple(registry), field


def test_prechecks_norm_checks_are_the_registrys():
  for name, kind in models.NORMS.items():
    assert kind.check is prechecks.NORM_CHECKS.get(name, validate.no_norm_check), name


def _launch(*args, importtime=False):
  command = [sys.executable, *(['-X', 'importtime'] if importtime else []), 'launch.py', *args]
  return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('typo', TYPOS)
def test_a_typo_is_refused_before_jax_flax_tfds_or_matplotlib_are_imported(typo, tmp_path):
  done = _launch('--config=configs/sweep.py', *typo.split(' '), f'--workdir={tmp_path / "w"}',
                 importtime=True)
  lines = done.stderr.splitlines()
  said = [line for line in lines if not line.startswith('import time:')]
  imported = {line.split('|')[-1].strip() for line in lines if line.startswith('import time:')}
  assert done.returncode == 2, done.stderr[-2000:]
  assert len(said) == 1 and said[0].startswith('error: '), said
  assert not imported & set(HEAVY), imported & set(HEAVY)
  assert not os.path.exists(tmp_path / 'w')
  # The full checks refuse the same config with the same line.
  overrides = dict(arg[len('--config.'):].split('=', 1) for arg in typo.split(' '))
  for field, value in overrides.items():
    if field in prechecks.BOUNDS:  # As absl parses a number.
      overrides[field] = ast.literal_eval(value)
  config = space.with_overrides(sweep_config.get_config(), overrides)
  with pytest.raises(records.ConfigError) as e:
    checks.check_config(config)
  assert said[0] == f'error: {e.value}'


def test_a_field_typo_in_a_config_file_is_refused_before_the_heavy_imports(tmp_path):
  path = tmp_path / 'typo.py'
  path.write_text('from configs import sweep\n\ndef get_config():\n  config = sweep.get_config()\n'
                  '  config.optimizer.lerning_rate = 0.1\n  return config\n')
  done = subprocess.run([sys.executable, '-X', 'importtime', 'launch.py', f'--config={path}',
                         f'--workdir={tmp_path / "w"}'], cwd=ROOT, capture_output=True,
                        text=True, timeout=300, env={**os.environ, 'PYTHONPATH': ROOT})
  lines = done.stderr.splitlines()
  said = [line for line in lines if not line.startswith('import time:')]
  imported = {line.split('|')[-1].strip() for line in lines if line.startswith('import time:')}
  assert done.returncode == 2 and said == [
      'error: optimizer.lerning_rate: configs/default.py defines no such field; optimizer has: '
      'b1, b2, clip_norm, decay, eps, learning_rate, momentum, name, schedule, weight_decay'], said
  assert not imported & set(HEAVY), imported & set(HEAVY)


def test_every_number_of_a_strategys_section_has_bounds():
  config = default_config.get_config()
  numbers = [f'sweep.{name}.{key}' for name in strategies.STRATEGIES
             for key, value in config.sweep.get(name, {}).items()
             if isinstance(value, (int, float)) and not isinstance(value, bool)]
  assert numbers and not set(numbers) - set(prechecks.BOUNDS), set(numbers) - set(prechecks.BOUNDS)


def _outside(bound):
  """Values just outside `bound`, each side that has one."""
  if isinstance(bound, prechecks.Count):
    return [bound.minimum - 1, True]
  low = bound.low if not bound.low_in else bound.low - 0.5
  high = [] if bound.high == float('inf') else [
      bound.high if not bound.high_in else bound.high + 0.5]
  return [low, *high]


@pytest.mark.parametrize('field', sorted(prechecks.BOUNDS))
def test_each_bound_refuses_the_values_just_outside_it_and_passes_the_default(field):
  config = sweep_config.get_config()
  prechecks.check_numbers(config)
  assert validate.has_field(config, field)
  for value in _outside(prechecks.BOUNDS[field]):
    bad = sweep_config.get_config()
    with bad.unlocked():
      parent, _, leaf = field.rpartition('.')
      (validate.get_field(bad, parent) if parent else bad)[leaf] = value
    with pytest.raises(records.ConfigError, match=rf'^{re.escape(field)}=\S+ must '):
      prechecks.check_numbers(bad)


def test_a_dataset_typo_is_refused_with_tfds_alone_and_the_full_checks_line(tmp_path):
  done = _launch('--config=configs/sweep.py', '--config.dataset.name=mnistt',
                 f'--workdir={tmp_path / "w"}', importtime=True)
  lines = done.stderr.splitlines()
  said = [line for line in lines if not line.startswith('import time:')]
  imported = {line.split('|')[-1].strip() for line in lines if line.startswith('import time:')}
  assert done.returncode == 2 and len(said) == 1, said
  assert 'tensorflow_datasets' in imported  # Its registry knows the names; JAX is not needed.
  assert not imported & (set(HEAVY) - {'tensorflow_datasets'}), imported & set(HEAVY)
  config = sweep_config.get_config()
  config.dataset.name = 'mnistt'
  with pytest.raises(records.ConfigError) as e:
    checks.check_config(config)
  assert said[0] == f'error: {e.value}' and "dataset.name='mnistt' is not a known" in said[0]


def test_prechecks_pass_every_shipped_config():
  for name in sorted(os.listdir(os.path.join(ROOT, 'configs'))):
    if name.endswith('.py') and name != '__init__.py':
      config = importlib.import_module(f'configs.{name[:-3]}').get_config()
      prechecks.check_config(config)


def test_describe_trials_says_how_many_and_which():
  assert monitor.describe_trials([7]) == 'trial 7'
  assert monitor.describe_trials(np.array([0, 2, 3, 4, 4])) == 'trials 0, 2-4'
  assert monitor.describe_trials(range(5)) == 'trials 0-4'
  scattered = list(range(1, 127, 2))[:60] + [122, 124, 126, 125, 123, 121]
  assert monitor.describe_trials(scattered) == f'{len(set(scattered))} trials in 1-126'


def test_format_rate_keeps_a_slow_rate_readable():
  assert monitor.format_rate(512, 2.0) == '256 members/s'
  assert monitor.format_rate(3, 2.0) == '1.5 members/s'
  assert monitor.format_rate(2, 5.0) == '2.5 s/member'  # Not '0 members/s'.
  assert monitor.format_rate(1, 250.0) == '250 s/member'


def _epoch(trials, epoch=1, epochs=2):
  population = types.SimpleNamespace(size=len(trials), trials=np.array(trials), epoch=epoch,
                                     epochs=epochs, started=np.zeros(len(trials), int))
  metrics = {'diverged': np.zeros(len(trials), bool),
             'val_accuracy': np.linspace(0.5, 0.9, len(trials))}
  return population, metrics


@pytest.mark.parametrize('quiet,level', [(False, logging.INFO), (True, logging.DEBUG)])
def test_the_epoch_line_goes_below_the_bar_on_a_terminal(caplog, quiet, level):
  caplog.set_level(logging.DEBUG, logger='absl')
  sweep.Progress(66, quiet=quiet).on_epoch(*_epoch([1, 4, 9]), seconds=4.0)
  [record] = [r for r in caplog.records if 'val_accuracy best' in r.getMessage()]
  assert record.levelno == level
  assert record.getMessage().startswith('trials 1, 4, 9 of 66 | epoch 1/2 |')
  assert '1.3 s/member' in record.getMessage()


def _hparams(workdir, trial):
  acc = event_accumulator.EventAccumulator(
      os.path.join(workdir, monitor.TENSORBOARD_DIR, f'trial_{trial:04d}'))
  acc.Reload()
  content = acc.PluginTagToContent('hparams')['_hparams_/session_start_info']
  hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
  return {k: v.string_value for k, v in hparams.items() if v.WhichOneof('kind') == 'string_value'}


def test_one_trial_launch_is_quiet_and_tensorboard_rows_name_their_sweep(config, digits, tmp_path):
  """A single-trial launch (the panda way): no TPU line, the dataset's lines once, 'trial 0';
  and two sweeps' trial 0 share their setting but not their hparams."""
  del digits  # Prepared: the launch below only reads the data dir.
  single = str(tmp_path / 'single')
  done = _launch('--config=configs/test.py', f'--workdir={single}',
                 f'--config.dataset.data_dir={config.dataset.data_dir}',
                 '--config.sweep.num_trials=1', '--config.train.epochs=1')
  assert done.returncode == 0, done.stderr[-3000:]
  assert "Unable to initialize backend 'tpu'" not in done.stderr
  assert done.stderr.count('Reusing dataset') == 1 and done.stderr.count('Load dataset info') == 1
  assert 'trial 0 of 1 | epoch 1/1 |' in done.stderr
  # Another sweep's trial 0, with the same setting, through the monitor alone.
  other = str(tmp_path / 'other')
  live = monitor.Monitor(other, space.with_overrides(config, {'sweep.strategy': 'quasirandom'}),
                         trial_epochs=1)
  population, metrics = _epoch([0], epoch=1, epochs=1)
  population.settings, population.started = [{'model.widths': (16, 16)}], np.zeros(1, int)
  population.programs = types.SimpleNamespace(compile_seconds=0.0)
  live.on_epoch(population, {**metrics, 'val_loss': np.ones(1)}, seconds=1.0)
  live.close()
  for workdir, strategy in ((single, 'random'), (other, 'quasirandom')):
    hparams = _hparams(workdir, 0)
    assert {k: hparams[k] for k in ('sweep.workdir', 'dataset.name', 'sweep.strategy')} == {
        'sweep.workdir': workdir, 'dataset.name': 'digits', 'sweep.strategy': strategy}
