"""sweep.strategy=gp: GP batches of K distinct settings trained in one program, every spec kind
inside its range, seeded batches, resume from the journal, and bad sweep.gp.batch_size."""
# test_resume's helpers (_count_epochs, _results) and test_strategies' fake Context serve here.
# pylint: disable=protected-access

import concurrent.futures
import os
import re
import subprocess
import sys

import pytest

from bnlab import checks
from bnlab import population as population_lib
from bnlab import records
from bnlab import space
from bnlab import sweep
from bnlab.strategies import gp
from bnlab.strategies import tpe
from tests import test_resume
from tests import test_strategies
from tests.conftest import ROOT

# One spec of each kind the GP takes: log, 1-beta, int and categorical.
SPECS = space.parse_space({'optimizer': {'learning_rate': 'log_uniform(1e-4, 1e-1)',
                                         'b2': 'one_minus_log_uniform(0.9, 0.9999)'},
                           'model': {'widths': 'choice((8,), (16, 16), (32,))'},
                           'train': {'batch_size': 'int_uniform(16, 64)'}})
# One shape (one bucket) with three kinds of dynamic specs: a GP batch is one program.
TRAINED = {'sweep.strategy': 'gp', 'optimizer.name': 'momentum', 'train.epochs': 1,
           'sweep.space.model.widths': '', 'sweep.space.optimizer.momentum': 'choice(0.8, 0.9)',
           'sweep.num_trials': 9, 'sweep.gp.batch_size': 3, 'sweep.max_parallel': 8}


@pytest.fixture(autouse=True)
def _short_startup(monkeypatch):
  """The GP takes over after 3 complete trials (Optuna's 10 would need bigger sweeps)."""
  monkeypatch.setattr(gp, 'STARTUP_TRIALS', 3)


_FakeContext = test_strategies._FakeContext  # val_accuracy = objective(setting), no training.
_near_1e2 = test_strategies._near_1e2


def _fake_run(config, seed=0, num_trials=12, batch_size=4):
  config.seed, config.sweep.strategy = seed, 'gp'
  config.sweep.num_trials, config.sweep.gp.batch_size = num_trials, batch_size
  calls = []
  settings = [r.setting for r in gp.run(_FakeContext(config, SPECS, calls, _near_1e2))]
  return settings, calls


def _distinct(settings):
  return len({tuple(sorted(s.items())) for s in settings}) == len(settings)


def _inside(spec, value):
  if not spec.is_numeric:
    return value in spec.args
  if spec.kind == 'int_uniform' and not isinstance(value, int):
    return False
  return spec.args[0] <= value <= spec.args[1]


def test_gp_asks_distinct_batches_of_every_spec_kind_inside_the_space(config):
  settings, calls = _fake_run(config)
  assert calls == [(0, 4), (4, 4), (8, 4)]  # The last two batches are the GP's (3 startup).
  for start, size in calls:
    assert _distinct(settings[start:start + size])
  assert all(_inside(SPECS[f], v) for s in settings for f, v in s.items())
  assert all(set(s) == set(SPECS) for s in settings)


def test_gp_is_seeded(config):
  first, _ = _fake_run(config, seed=3, num_trials=8)
  again, _ = _fake_run(config, seed=3, num_trials=8)
  other, _ = _fake_run(config, seed=4, num_trials=8)
  assert first == again  # GP batches included: they depend only on (seed, results told).
  assert first[:4] != other[:4]


def test_a_repeat_inside_a_batch_is_asked_again(config):
  # Six settings in all: a batch of four from random draws repeats one now and then.
  config.sweep.strategy, config.sweep.num_trials, config.sweep.gp.batch_size = 'gp', 8, 4
  specs = space.parse_space({'model': {'widths': 'choice((8,), (16,), (32,))'},
                             'optimizer': {'momentum': 'choice(0.8, 0.9)'}})
  for seed in range(4):
    config.seed = seed
    settings = [r.setting for r in gp.run(_FakeContext(config, specs, [], lambda s: 0.0))]
    assert _distinct(settings[:4]) and _distinct(settings[4:])
  # Two settings in all: a batch of four keeps its repeats rather than asking forever.
  specs = {'optimizer.momentum': specs['optimizer.momentum']}
  settings = [r.setting for r in gp.run(_FakeContext(config, specs, [], lambda s: 0.0))]
  assert len(settings) == 8 and {s['optimizer.momentum'] for s in settings} == {0.8, 0.9}


def test_a_gp_batch_is_k_distinct_settings_trained_in_one_program(config, tmp_path, monkeypatch):
  created = []
  real = population_lib.Population.create

  def create(configs, settings, *args, **kwargs):
    created.append(list(settings))
    return real(configs, settings, *args, **kwargs)

  monkeypatch.setattr(population_lib.Population, 'create', staticmethod(create))
  sweep.run(space.with_overrides(config, TRAINED), str(tmp_path))
  assert [len(s) for s in created] == [3, 3, 3]  # One population (program) per batch.
  for batch in created:
    assert _distinct(batch)
    assert {0.8, 0.9} >= {s['optimizer.momentum'] for s in batch}
    assert all(1e-3 <= s['optimizer.learning_rate'] <= 1e-1 for s in batch)
    assert all(0.5 <= s['model.bn_momentum'] <= 0.99 for s in batch)


def test_the_median_pruner_stops_gp_trials_and_tells_the_study(config, tmp_path, monkeypatch):
  told, real_tell = [], tpe.tell

  def tell(study, asked, done, config):
    told.extend(r.status for r in done)
    return real_tell(study, asked, done, config)

  monkeypatch.setattr(tpe, 'tell', tell)
  done = sweep.run(space.with_overrides(config, {**TRAINED, 'train.epochs': 3,
                                                 'sweep.pruner': 'median'}), str(tmp_path))
  pruned = [r for r in done if r.status == records.PRUNED]
  assert pruned and all(r.epochs < 3 for r in pruned)
  assert all(r.epochs == 3 for r in done if r.status == records.OK)
  assert told.count(records.PRUNED) == len(pruned)


@pytest.mark.slow  # gp resumes through tpe.run_batches, which test_resume_strategies covers.
def test_an_interrupted_gp_sweep_resumes_to_the_uninterrupted_results(
    config, tmp_path, monkeypatch):
  config = space.with_overrides(config, {**TRAINED, 'train.epochs': 2,
                                         'train.checkpoint_every': 1})
  with monkeypatch.context() as patch:
    calls = test_resume._count_epochs(patch)
    sweep.run(config, str(tmp_path / 'whole'))
  expected, epochs = test_resume._results(str(tmp_path / 'whole')), len(calls)
  with monkeypatch.context() as patch:
    test_resume._count_epochs(patch, fail_at=epochs - 1)  # In the last (a GP) batch.
    with pytest.raises(test_resume.Interrupt):
      sweep.run(config, str(tmp_path / 'cut'))
  calls = test_resume._count_epochs(monkeypatch)
  sweep.run(config, str(tmp_path / 'cut'))
  assert test_resume._results(str(tmp_path / 'cut')) == expected
  assert len(calls) < epochs  # It resumed rather than starting again.


@pytest.mark.parametrize('overrides, message', [
    ({'sweep.gp.batch_size': 0}, 'sweep.gp.batch_size=0 must be a int >= 1'),
    ({'sweep.gp.batch_size': -1}, 'sweep.gp.batch_size=-1 must be a int >= 1'),
    ({'sweep.gp.batch_size': True}, 'sweep.gp.batch_size=True must be a int'),
    ({'sweep.space.optimizer.learning_rate': 'grid(0.1, 0.01)'},
     "sweep.space.optimizer.learning_rate=grid(...): sweep.strategy='gp' takes no grid"),
])
def test_bad_gp_inputs_name_the_field(config, overrides, message):
  config = space.with_overrides(config, {'sweep.strategy': 'gp', **overrides})
  with pytest.raises(checks.ConfigError, match='^' + re.escape(message)):
    sweep.prepare(config)


def _launch(value, workdir, data_dir):
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, 'launch.py'), '--config=configs/test.py',
       f'--workdir={workdir}', f'--config.dataset.data_dir={data_dir}',
       '--config.sweep.strategy=gp', f'--config.sweep.gp.batch_size={value}'],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_a_bad_batch_size_through_launch_is_one_line_exit_2(tmp_path, data_dir):
  values = {'0': 'sweep.gp.batch_size=0 must be a int >= 1',
            '-1': 'sweep.gp.batch_size=-1 must be a int >= 1',
            '2.5': '--config.sweep.gp.batch_size=2.5: must be a int'}
  with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
    results = {v: pool.submit(_launch, v, str(tmp_path / f'w{i}'), data_dir)
               for i, v in enumerate(values)}
  for i, (value, message) in enumerate(values.items()):
    result = results[value].result()
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith('error')]
    assert lines == [result.stderr.strip().splitlines()[-1]]
    assert lines[0].startswith(f'error: {message}'), lines[0]
    assert not os.path.exists(tmp_path / f'w{i}')  # The workdir is untouched.
