"""Resume: a sweep interrupted anywhere and run again ends exactly as one never interrupted."""

import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint._src.path import atomicity
import pytest

from bnlab import checkpoint
from bnlab import checks
from bnlab import files
from bnlab import integrity
from bnlab import population as population_lib
from bnlab import space
from bnlab import sweep
from tests.conftest import ROOT
from tests.conftest import create_population


class Interrupt(Exception):
  """Stands for a preemption at the point where a test raises it."""


def _config(config):
  config.train.epochs = 3
  config.sweep.max_parallel = 2  # 6 trials, 2 shapes (4 + 2): three chunks of two.
  config.train.checkpoint_every = 1
  return config


def _results(workdir):
  """results.csv without the wall-clock column, and history.jsonl, as text."""
  with open(os.path.join(workdir, 'results.csv')) as f:
    rows = [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(f)]
  with open(os.path.join(workdir, 'history.jsonl')) as f:
    return rows, f.read()


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, data_dir):
  from configs import test as test_config  # pylint: disable=import-outside-toplevel
  config = _config(test_config.get_config())
  config.dataset.data_dir = data_dir
  workdir = str(tmp_path_factory.mktemp('uninterrupted'))
  sweep.run(config, workdir)
  return _results(workdir)


def _count_epochs(monkeypatch, fail_at=None):
  """Counts Population.run_epoch calls; raises Interrupt on call number `fail_at`."""
  calls = []
  real = population_lib.Population.run_epoch

  def run_epoch(self, data, on_epoch=None, extra=None):
    calls.append(self.epoch)
    if len(calls) == fail_at:
      raise Interrupt
    return real(self, data, on_epoch, extra)

  monkeypatch.setattr(population_lib.Population, 'run_epoch', run_epoch)
  return calls


def _fail_on_call(monkeypatch, owner, name, number, before=True):
  """Makes call `number` of owner.name raise Interrupt, before or after the real call."""
  real = getattr(owner, name)
  calls = []

  def wrapped(*args, **kwargs):
    calls.append(1)
    if before and len(calls) == number:
      raise Interrupt
    out = real(*args, **kwargs)
    if not before and len(calls) == number:
      raise Interrupt
    return out

  monkeypatch.setattr(owner, name, wrapped)


def _interrupt_mid_epoch(monkeypatch):
  _count_epochs(monkeypatch, fail_at=5)  # Second chunk, second epoch.


def _interrupt_between_chunks(monkeypatch):
  _fail_on_call(monkeypatch, checkpoint.SweepCheckpointer, 'save_chunk', 1, before=False)


def _fail_on_path(monkeypatch, owner, name, part):
  """Makes the first call of owner.name whose first two arguments name `part` raise Interrupt."""
  real = getattr(owner, name)

  def wrapped(*args, **kwargs):
    if any(part in str(a) for a in args[:2]):
      monkeypatch.setattr(owner, name, real)
      raise Interrupt
    return real(*args, **kwargs)

  monkeypatch.setattr(owner, name, wrapped)


def _interrupt_mid_journal_write(monkeypatch):
  # The journal's temporary file is written, the rename never happens: a kill mid-write.
  _fail_on_path(monkeypatch, os, 'replace', '/journal/')


def _interrupt_mid_checkpoint_write(monkeypatch):
  # Orbax has written the checkpoint into its temporary folder but not renamed it into place.
  real = atomicity.AtomicRenameTemporaryPath.finalize
  calls = []

  async def finalize(self):
    calls.append(1)
    if len(calls) == 4:  # Chunk one, epoch two (each save finalizes meta, state, its folder).
      raise Interrupt
    return await real(self)

  monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, 'finalize', finalize)


def _interrupt_mid_report(monkeypatch):
  _fail_on_path(monkeypatch, files, 'write_text', 'history.jsonl')  # after results.csv


def _caused_by_interrupt(error):
  """Orbax may wrap an exception raised inside its save; look down the chain."""
  while error is not None:
    if isinstance(error, Interrupt):
      return True
    error = error.__cause__ or error.__context__
  return False


@pytest.mark.parametrize('interrupt', [
    _interrupt_mid_epoch, _interrupt_between_chunks, _interrupt_mid_journal_write,
    _interrupt_mid_checkpoint_write, _interrupt_mid_report])
def test_an_interrupted_sweep_resumes_to_the_uninterrupted_results(
    interrupt, uninterrupted, config, tmp_path, monkeypatch):
  config = _config(config)
  with monkeypatch.context() as patch:
    interrupt(patch)
    with pytest.raises(Exception) as raised:
      sweep.run(config, str(tmp_path))
    assert _caused_by_interrupt(raised.value), raised.value
  calls = _count_epochs(monkeypatch)
  sweep.run(config, str(tmp_path))
  assert _results(str(tmp_path)) == uninterrupted
  # It resumed: fewer member-epochs than the 3 chunks x 3 epochs of a fresh run.
  assert len(calls) < 9
  assert sweep.run(config, str(tmp_path)) is None  # Complete: nothing left to train.
  assert len(calls) < 9


def test_a_chunk_resumes_at_its_last_checkpointed_epoch(config, tmp_path, monkeypatch):
  config = _config(config)
  config.train.checkpoint_every = 2
  config.train.keep_checkpoints = True  # To count them below; the default removes them.
  with monkeypatch.context() as patch:
    _count_epochs(patch, fail_at=3)  # Chunk one, epoch three: its last checkpoint is epoch 2.
    with pytest.raises(Interrupt):
      sweep.run(config, str(tmp_path))
  calls = _count_epochs(monkeypatch)
  sweep.run(config, str(tmp_path))
  assert calls[0] == 2  # The first chunk's next epoch (0-based) after its checkpoint.
  # A chunk's last epoch is journaled, not saved: every chunk's checkpoint is of epoch 2.
  saved = glob.glob(os.path.join(tmp_path, 'checkpoints', 'populations', '*', '*'))
  assert len(glob.glob(os.path.join(tmp_path, 'checkpoints', 'journal', '*.json'))) == 3
  assert sorted(os.path.basename(p) for p in saved if os.path.basename(p).isdigit()) == ['2'] * 3


def test_a_journaled_chunks_checkpoints_are_removed_and_the_resume_reads_its_journal(
    uninterrupted, config, tmp_path, monkeypatch):
  """train.keep_checkpoints=False (the default): once a chunk's records are journaled its
  population checkpoints go, during the run, and a run killed after that still ends alike."""
  config = _config(config)
  with monkeypatch.context() as patch:
    _count_epochs(patch, fail_at=5)  # Chunk two, epoch two: chunk one is journaled.
    with pytest.raises(Interrupt):
      sweep.run(config, str(tmp_path))
  root = os.path.join(tmp_path, 'checkpoints')
  journaled = [os.path.basename(p)[:-len('.json')]
               for p in glob.glob(os.path.join(root, 'journal', '*.json'))]
  kept = os.listdir(os.path.join(root, 'populations'))
  assert len(journaled) == 1 and len(kept) == 1 and kept[0] not in journaled
  sweep.run(config, str(tmp_path))
  assert _results(str(tmp_path)) == uninterrupted
  assert os.listdir(os.path.join(root, 'populations')) == []
  assert os.listdir(os.path.join(root, 'manifests')) == []
  assert len(glob.glob(os.path.join(root, 'journal', '*.json'))) == 3


def test_another_config_on_a_workdir_is_refused_and_leaves_it_untouched(config, tmp_path):
  config = _config(config)
  config.sweep.num_trials = 2
  sweep.run(config, str(tmp_path))
  before = {p: open(p, 'rb').read() for p in glob.glob(f'{tmp_path}/**', recursive=True)
            if os.path.isfile(p)}
  config.optimizer.b1 = 0.8
  with pytest.raises(checks.ConfigError, match=r'optimizer\.b1 was 0\.9, now 0\.8'):
    sweep.run(config, str(tmp_path))
  after = {p: open(p, 'rb').read() for p in glob.glob(f'{tmp_path}/**', recursive=True)
           if os.path.isfile(p)}
  assert after == before
  config.train.checkpoint_every = 0  # Changes no result: not a different sweep.
  config.optimizer.b1 = 0.9
  assert sweep.run(config, str(tmp_path)) is None
  config.optimizer.b1 = 0.8
  assert len(sweep.run(config, str(tmp_path), overwrite=True)) == 2


# One shape (one compile per process), four trials in two chunks, a checkpoint every epoch.
KILLED = {'train.epochs': 3, 'sweep.max_parallel': 2, 'train.checkpoint_every': 1,
          'sweep.num_trials': 4, 'sweep.space.model.widths': ''}


def _launch(workdir, data_dir, log):
  return subprocess.Popen(
      [sys.executable, os.path.join(ROOT, 'launch.py'), '--config=configs/test.py',
       f'--workdir={workdir}', f'--config.dataset.data_dir={data_dir}',
       *[f'--config.{field}={value}' for field, value in KILLED.items()]],
      cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def _first_checkpoint(workdir, process, timeout=300):
  """Waits until a checkpoint is usable: Orbax has committed it and its manifest is written (a
  kill between the two leaves a checkpoint that a resume does not trust: test_integrity.py)."""
  deadline = time.monotonic() + timeout
  pattern = os.path.join(workdir, 'checkpoints', 'manifests', '*', '*.json')
  while time.monotonic() < deadline and process.poll() is None:
    if glob.glob(pattern):
      return True
    time.sleep(0.02)
  return False


def test_a_sweep_killed_with_sigkill_resumes_to_the_same_results(config, data_dir, tmp_path):
  config = space.with_overrides(config, KILLED)
  sweep.run(config, str(tmp_path / 'uninterrupted'))
  workdir = str(tmp_path / 'workdir')
  with open(tmp_path / 'killed.log', 'w') as log:
    process = _launch(workdir, data_dir, log)
    found = _first_checkpoint(workdir, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
  assert found, (tmp_path / 'killed.log').read_text()[-3000:]
  assert not os.path.exists(os.path.join(workdir, 'checkpoints', 'complete.json'))
  with open(tmp_path / 'resumed.log', 'w') as log:
    process = _launch(workdir, data_dir, log)
    assert process.wait(timeout=600) == 0, (tmp_path / 'resumed.log').read_text()[-3000:]
  assert 'resume after epoch' in (tmp_path / 'resumed.log').read_text()
  assert _results(workdir) == _results(str(tmp_path / 'uninterrupted'))


def test_a_population_restores_bit_for_bit_with_the_callers_state(config, digits, tmp_path):
  data, num_classes = digits
  configs = [space.with_overrides(config, {'optimizer.learning_rate': lr}) for lr in (0.1, 0.01)]
  original = create_population(configs, [0, 1], data, num_classes, seed=0)
  original.run_epoch(data)
  original.seconds = np.array([1.5, 2.5])
  checkpointer = checkpoint.SweepCheckpointer(str(tmp_path))
  original.save(checkpointer, 'rung0', extra={'survivors': [1, 0]})
  restored = create_population(configs, [0, 1], data, num_classes, seed=0)
  extra = restored.restore(checkpointer, 'rung0')
  assert (restored.epoch, restored.seconds.tolist(), extra) == (1, [1.5, 2.5],
                                                                {'survivors': [1, 0]})
  jax.tree.map(np.testing.assert_array_equal, restored.history, original.history)
  jax.tree.map(np.testing.assert_array_equal, restored.state, original.state)
  jax.tree.map(np.testing.assert_array_equal, restored.run_epoch(data), original.run_epoch(data))
  assert create_population(configs, [0, 1], data, num_classes, seed=0).restore(
      checkpointer, 'no_such_rung') is None


def _save_as_earlier_bnlab(state, folder, step):
  """Before its saves went uncompressed, bnlab saved the state with Orbax's StandardSave (zstd);
  before it verified checkpoints, it wrote no manifest."""
  old = ocp.CheckpointManager(folder, options=ocp.CheckpointManagerOptions(create=True))
  meta = {'epoch': step, 'history': [], 'seconds': 2.0, 'extra': None}
  old.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                         meta=ocp.args.JsonSave(meta)))
  old.close()


def test_a_compressed_checkpoint_restores_and_one_without_a_manifest_is_not_trusted(
    config, digits, tmp_path):
  data, num_classes = digits
  configs = [space.with_overrides(config, {'optimizer.learning_rate': lr}) for lr in (0.1, 0.01)]
  original = create_population(configs, [0, 1], data, num_classes, seed=0)
  original.run_epoch(data)
  checkpointer = checkpoint.SweepCheckpointer(str(tmp_path))
  for name in ('verified', 'unverified'):
    _save_as_earlier_bnlab(original.state, os.path.join(checkpointer.root, 'populations', name), 1)
  files.write_text(os.path.join(checkpointer.root, 'manifests', 'verified', '1.json'), json.dumps(
      integrity.digests(os.path.join(checkpointer.root, 'populations', 'verified', '1'))))
  restored = create_population(configs, [0, 1], data, num_classes, seed=0)
  restored.restore(checkpointer, 'verified')
  assert (restored.epoch, restored.seconds.tolist()) == (1, [2.0, 2.0])
  jax.tree.map(np.testing.assert_array_equal, restored.state, original.state)
  fresh = create_population(configs, [0, 1], data, num_classes, seed=0)
  assert fresh.restore(checkpointer, 'unverified') is None and fresh.epoch == 0
  assert not os.path.exists(os.path.join(checkpointer.root, 'populations', 'unverified', '1'))
