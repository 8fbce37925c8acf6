"""Resume of the strategies that decide as they go: halving and pbt (checkpointed populations and
driver state), coarse_to_fine and tpe (rounds replayed from the journal). A sweep interrupted at
several points and run again ends with the results of a run never interrupted, cell for cell.

The equality is exact: a restored member continues bit for bit. Momentum SGD throughout, since
Adam turns any float-level difference into lr-sized steps (see test_population), which would make a
failure harder to read.
"""
# test_resume's helpers (_count_epochs, _results, _launch, ...) serve this file too.
# pylint: disable=protected-access

import glob
import os
import signal
import time

from orbax.checkpoint._src.path import atomicity
import pytest

from bnlab import space
from bnlab import sweep
from tests import test_resume

Interrupt = test_resume.Interrupt

# Two shapes (widths), so every strategy drives several populations at once.
CONFIGS = {
    # Rungs at epochs 1, 2, 4; checkpoints only at the rungs and the end (cadence 0): an
    # interruption in epoch 3 or 4 goes back to the rung at epoch 2.
    'halving': {'sweep.halving.eta': 2, 'sweep.halving.min_epochs': 1, 'train.epochs': 4,
                'train.checkpoint_every': 0, 'sweep.max_parallel': 2},
    # Brackets of 4, 3 and 3 trials (rungs 1-2-4, 2-4 and 4 epochs), checkpointed as halving's.
    'hyperband': {'sweep.hyperband.eta': 2, 'sweep.hyperband.min_epochs': 1, 'train.epochs': 4,
                  'train.checkpoint_every': 0, 'sweep.max_parallel': 2},
    # An exploit step after every epoch, a checkpoint every second epoch (after its exploit).
    'pbt': {'sweep.pbt.interval': 1, 'sweep.pbt.quantile': 0.5, 'train.epochs': 3,
            'train.checkpoint_every': 2, 'sweep.max_parallel': 4},
    'coarse_to_fine': {'sweep.coarse_to_fine.rounds': 2, 'train.epochs': 2,
                       'train.checkpoint_every': 1,
                       'sweep.max_parallel': 2},
    'tpe': {'sweep.tpe.batch_size': 3, 'train.epochs': 2, 'train.checkpoint_every': 1,
            'sweep.max_parallel': 2},
}


def _config(config, strategy):
  return space.with_overrides(config, {'sweep.strategy': strategy, 'optimizer.name': 'momentum',
                                       **CONFIGS[strategy]})


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, data_dir):
  """{strategy: (results, epochs trained)} of each strategy's sweep, run once, lazily."""
  from configs import test as test_config  # pylint: disable=import-outside-toplevel
  runs = {}

  def get(strategy):
    if strategy not in runs:
      config = test_config.get_config()
      config.dataset.data_dir = data_dir
      workdir = str(tmp_path_factory.mktemp(strategy))
      with pytest.MonkeyPatch.context() as patch:
        calls = test_resume._count_epochs(patch)
        sweep.run(_config(config, strategy), workdir)
      runs[strategy] = test_resume._results(workdir), len(calls)
    return runs[strategy]

  return get


# (strategy, the Population.run_epoch call that raises, as a share of the uninterrupted run's).
POINTS = [('halving', 0.6), ('halving', 1.0), ('pbt', 0.8), ('pbt', 1.0),
          ('coarse_to_fine', 0.7), ('tpe', 0.7), ('hyperband', 0.5), ('hyperband', 0.9)]


@pytest.mark.parametrize('strategy,share', POINTS)
def test_an_interrupted_strategy_resumes_to_the_uninterrupted_results(
    strategy, share, uninterrupted, config, tmp_path, monkeypatch):
  expected, epochs = uninterrupted(strategy)
  config = _config(config, strategy)
  with monkeypatch.context() as patch:
    test_resume._count_epochs(patch, fail_at=max(2, round(share * epochs)))
    with pytest.raises(Interrupt):
      sweep.run(config, str(tmp_path))
  calls = test_resume._count_epochs(monkeypatch)
  sweep.run(config, str(tmp_path))
  assert test_resume._results(str(tmp_path)) == expected
  assert len(calls) < epochs  # It resumed rather than starting again.
  assert sweep.run(config, str(tmp_path)) is None  # Complete: nothing left to train.


def test_pbt_interrupted_inside_an_orbax_save_resumes_from_the_save_before(
    uninterrupted, config, tmp_path, monkeypatch):
  expected, epochs = uninterrupted('pbt')
  config = _config(config, 'pbt')
  real = atomicity.AtomicRenameTemporaryPath.finalize

  async def finalize(self):  # Written into the temporary folder, never renamed into place.
    # The first group's epoch-3 step folder (its items are renamed before it): its epoch-2
    # checkpoint stays the latest; the second group has not trained epoch 3 yet.
    if str(self.get()).endswith('/3.orbax-checkpoint-tmp'):
      raise Interrupt
    return await real(self)

  with monkeypatch.context() as patch:
    patch.setattr(atomicity.AtomicRenameTemporaryPath, 'finalize', finalize)
    with pytest.raises(Exception) as raised:
      sweep.run(config, str(tmp_path))
    assert test_resume._caused_by_interrupt(raised.value), raised.value
  calls = test_resume._count_epochs(monkeypatch)
  sweep.run(config, str(tmp_path))
  assert test_resume._results(str(tmp_path)) == expected
  assert calls == [2, 2] and epochs == 6  # Each group's third epoch, from its epoch-2 save.


def _wait_for(pattern, process, timeout=300):
  """Waits until a committed Orbax step folder matches `pattern` (or the process ends)."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and process.poll() is None:
    if any(os.path.basename(p).isdigit() for p in glob.glob(pattern)):
      return True
    time.sleep(0.02)
  return False


@pytest.mark.slow  # About 40 s on two cores: two processes that each import TF and compile.
@pytest.mark.parametrize('strategy,rung_one', [('halving', 'halving-r1-*'),
                                               ('hyperband', 'hyperband-s2-r1-*')])
def test_a_halving_sweep_killed_with_sigkill_after_a_rung_resumes_to_the_same_results(
    strategy, rung_one, uninterrupted, data_dir, tmp_path, monkeypatch):
  expected, _ = uninterrupted(strategy)
  # test_resume's launcher, with this file's sweep as its overrides.
  monkeypatch.setattr(test_resume, 'KILLED', {'sweep.strategy': strategy,
                                              'optimizer.name': 'momentum', **CONFIGS[strategy]})
  workdir = str(tmp_path / 'workdir')
  with open(tmp_path / 'killed.log', 'w') as log:
    process = test_resume._launch(workdir, data_dir, log)
    # A survivor group of the second rung has saved: the kill lands past the first pruning.
    found = _wait_for(os.path.join(workdir, 'checkpoints', 'populations', rung_one, '*'),
                      process)
    process.send_signal(signal.SIGKILL)
    process.wait()
  assert found, (tmp_path / 'killed.log').read_text()[-3000:]
  assert not os.path.exists(os.path.join(workdir, 'checkpoints', 'complete.json'))
  with open(tmp_path / 'resumed.log', 'w') as log:
    process = test_resume._launch(workdir, data_dir, log)
    assert process.wait(timeout=600) == 0, (tmp_path / 'resumed.log').read_text()[-3000:]
  assert 'resume after epoch 2' in (tmp_path / 'resumed.log').read_text()
  assert test_resume._results(workdir) == expected
