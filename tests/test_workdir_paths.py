"""A workdir at gs://BUCKET/...: every file through etils.epath, checked on a fake bucket.

No test here touches the network. The fake bucket (`FakeBucket`) takes the place of
`tf.io.gfile`'s GCS file system inside etils.epath's TensorFlow backend, the backend epath
picks for every `gs://` path when TensorFlow is installed: bnlab's calls, epath's dispatch on the
scheme and the backend's translation of TF errors run as they would on GCS, and the fake then
does each operation with `tf.io.gfile` on a local folder standing for the bucket. Orbax sees a
`gs://` path too, so it takes its GCS branches (a commit file instead of a folder rename, its
GCS rmtree); tensorstore, which writes the arrays with its own GCS driver, is pointed at the
same local folder with its `file` driver, and Orbax's query of the bucket's hierarchical
namespace is answered "no".

Not covered: GCS itself (tf.io.gfile's GCS plugin, its upload on every flush, eventual
listing, permissions) and tensorstore's `gcs` driver; those need a real bucket.
"""

import json
import os
import subprocess
import sys

from etils import epath
from etils.epath import backend as epath_backend
from orbax.checkpoint._src.path import gcs_utils
import pytest
from tensorboard.backend.event_processing import event_file_loader

from bnlab import checks
from bnlab import files
from bnlab import records
from bnlab import sweep
from bnlab import workdir as workdir_lib
from bnlab.reporting import cli
from bnlab.reporting import compare
from bnlab.reporting import sweepfiles
from tests import test_resume
from tests.conftest import ROOT

BUCKET = 'gs://bnlab-fake-bucket'


class FakeBucket(epath_backend._TfBackend):  # pylint: disable=protected-access
  """epath's TensorFlow backend with `gs://bnlab-fake-bucket` mapped onto a local folder.

  Every other path is refused: a `gs://` path that reaches it from elsewhere is a test failure,
  never a request to GCS.
  """

  def __init__(self, root):
    self.root = str(root)
    self.calls = []  # (operation, the gs:// path): what bnlab and Orbax asked the bucket.

  def local(self, path):
    path = os.fspath(path)
    if path.startswith(self.root):  # The TF backend calls itself (makedirs -> exists).
      return path
    if not path.startswith(BUCKET):
      raise AssertionError(f'{path} is not in the fake bucket {BUCKET}')
    return self.root + path[len(BUCKET):]

  def remote(self, path):
    return BUCKET + os.fspath(path)[len(self.root):]

  def _call(self, operation, path, *args, **kwargs):
    self.calls.append((operation, os.fspath(path)))
    return getattr(super(), operation)(self.local(path), *args, **kwargs)

  def open(self, path, mode):
    return self._call('open', path, mode)

  def exists(self, path):
    return self._call('exists', path)

  def isdir(self, path):
    return self._call('isdir', path)

  def listdir(self, path):
    return self._call('listdir', path)

  def glob(self, path):
    return [self.remote(p) for p in self._call('glob', path)]

  def walk(self, top, *, top_down=True, on_error=None):
    for root, dirs, names in self._call('walk', top, top_down=top_down, on_error=on_error):
      yield self.remote(root), dirs, names

  def makedirs(self, path, *, exist_ok=False, mode=None):
    return self._call('makedirs', path, exist_ok=exist_ok, mode=mode)

  def mkdir(self, path, *, exist_ok=False, mode=None):
    return self._call('mkdir', path, exist_ok=exist_ok, mode=mode)

  def rmtree(self, path):
    return self._call('rmtree', path)

  def remove(self, path):
    return self._call('remove', path)

  def rename(self, path, dst):
    return self._call('rename', path, self.local(dst))

  def replace(self, path, dst):
    return self._call('replace', path, self.local(dst))

  def copy(self, path, dst, overwrite):
    return self._call('copy', path, self.local(dst), overwrite=overwrite)

  def stat(self, path):
    return self._call('stat', path)


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  """The fake bucket in place of GCS for the test; cwd is an empty folder (see no_local_leak)."""
  root = tmp_path / 'bucket'
  root.mkdir()
  fake = FakeBucket(root)
  monkeypatch.setattr(epath_backend, 'tf_backend', fake)  # epath's choice for every gs:// path.

  def kvstore(path):  # Orbax asks for tensorstore's GCS driver: the file driver on the same folder.
    return {'driver': 'file', 'path': fake.local(path)}

  monkeypatch.setattr(gcs_utils, 'get_kvstore_for_gcs', kvstore)
  monkeypatch.setattr(gcs_utils, 'is_hierarchical_namespace_enabled', lambda path: False)
  cwd = tmp_path / 'cwd'
  cwd.mkdir()
  monkeypatch.chdir(cwd)
  return fake


def no_local_leak(fake):
  """Nothing was written relative to the working directory (`gs:/...` from an os.* call)."""
  return os.listdir(os.getcwd()) == []


def tree(folder):
  """Every file under `folder`, relative to it."""
  return sorted(os.path.relpath(os.path.join(d, n), folder)
                for d, _, names in os.walk(folder) for n in names)



@pytest.fixture(params=['local', 'gs'])
def where(request, tmp_path):
  """(a folder to write under, the local file that holds a path of it): local and fake gs://."""
  if request.param == 'local':
    return str(tmp_path / 'w'), lambda path: path
  fake = request.getfixturevalue('bucket')
  return f'{BUCKET}/w', fake.local


# The path helpers.

@pytest.mark.parametrize('path, supported', [
    ('runs/x', True), ('/abs/x', True), ('x:1', True), ('gs://b', True), ('gs://b/runs/x', True),
    ('gs://', False), ('s3://b/x', False), ('file:///tmp/x', False), ('ram://x', False)])
def test_a_workdir_is_local_or_on_gcs(path, supported):
  assert files.supported(path) == supported
  assert files.is_local(path) == ('://' not in path)


def test_a_gs_workdir_names_the_packages_it_lacks(monkeypatch):
  installed = {'tensorflow'}
  monkeypatch.setattr(files, '_importable', lambda module: module in installed)
  assert files.missing_packages('gs://b/run') == ['google-cloud-storage']
  assert files.missing_packages('runs/x') == []
  installed.add('google.cloud.storage')
  assert files.missing_packages('gs://b/run') == []


def test_a_local_path_is_made_absolute_and_a_uri_is_left_alone(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert files.absolute('runs/x') == str(tmp_path / 'runs' / 'x')
  assert files.absolute('gs://b/runs/x') == 'gs://b/runs/x'
  # What the checkpointer did before: os.path.abspath makes a URI a local folder named gs:.
  assert os.path.abspath('gs://b/runs/x') == str(tmp_path / 'gs:' / 'b' / 'runs' / 'x')


def test_a_workdir_name_is_its_last_part(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert [files.name(p) for p in ('runs/x', 'runs/x/', 'gs://b/x', 'gs://b/x/', '.')] == [
      'x', 'x', 'x', 'x', tmp_path.name]


def test_write_and_read_text_and_bytes(where):
  base, local = where
  path = os.path.join(base, 'a', 'b.json')
  assert not files.exists(path)
  files.write_text(path, 'one\n')  # Makes the missing folders.
  files.write_text(path, 'two\n')
  files.write_bytes(os.path.join(base, 'a', 'c.png'), b'\x89PNG\x00')
  assert files.read_text(path) == 'two\n'
  assert files.exists(path) and files.isdir(os.path.join(base, 'a'))
  with open(local(path)) as f:
    assert f.read() == 'two\n'
  with open(local(os.path.join(base, 'a', 'c.png')), 'rb') as f:
    assert f.read() == b'\x89PNG\x00'
  assert sorted(os.listdir(local(os.path.join(base, 'a')))) == ['b.json', 'c.png']  # No .tmp.


def test_a_write_killed_before_its_rename_leaves_the_old_file(where, monkeypatch):
  base, local = where
  path = os.path.join(base, 'best.json')
  files.write_text(path, 'old\n')

  def killed(self, target):
    raise KeyboardInterrupt

  monkeypatch.setattr(type(epath.Path(path)), 'replace', killed)
  with pytest.raises(KeyboardInterrupt):
    files.write_text(path, 'new\n')
  with open(local(path)) as f:
    assert f.read() == 'old\n'
  with open(local(path) + '.tmp') as f:
    assert f.read() == 'new\n'


def test_a_file_kept_open_appends_and_folders_come_and_go(where):
  base, local = where
  path = os.path.join(base, 'logs', 'progress.jsonl')
  files.makedirs(os.path.dirname(path))
  files.makedirs(os.path.dirname(path))  # Already there: fine.
  for text in ('1\n', '2\n'):  # Two runs of a resumed sweep.
    f = files.open_file(path, 'a')
    f.write(text)
    f.flush()
    f.close()
  assert files.read_text(path) == '1\n2\n'
  files.rmtree(base)
  assert not files.exists(path) and not os.path.exists(local(base))


# A whole sweep.

def _sweep_config(config):
  config.train.checkpoint_every = 1
  config.sweep.max_parallel = 2  # 6 trials, 2 shapes (4 + 2): three chunks of two, 2 epochs.
  return config


Interrupt = test_resume.Interrupt
_count_epochs = test_resume._count_epochs  # pylint: disable=protected-access
_results = test_resume._results  # pylint: disable=protected-access

CONTRACT = ['config.json', 'results.csv', 'history.jsonl', 'best.json', 'best_config.py',
            'plots/curves.png', 'plots/metric_vs_optimizer.learning_rate.png', 'report.html',
            'report.md', 'progress.jsonl', 'timing.json', 'checkpoints/complete.json']


def test_a_sweep_on_gs_writes_there_resumes_and_completes(bucket, config, tmp_path, monkeypatch):
  config = _sweep_config(config)
  local_workdir = str(tmp_path / 'local')
  sweep.run(config, local_workdir)
  workdir = f'{BUCKET}/runs/test'
  with monkeypatch.context() as patch:
    _count_epochs(patch, fail_at=4)  # Chunk two, epoch two: chunk one journaled, two saved.
    with pytest.raises(Interrupt):
      sweep.run(config, workdir)
  # Orbax took its GCS branch: a commit file marks each finished checkpoint, no folder rename.
  assert any(f.startswith('checkpoints/populations/') and f.endswith('/commit_success.txt')
             for f in tree(bucket.local(workdir)))
  calls = _count_epochs(monkeypatch)
  sweep.run(config, workdir)
  assert calls[0] == 1  # Chunk two went on from its epoch-1 Orbax checkpoint, read from gs://.
  assert len(calls) == 3
  assert sweep.run(config, workdir) is None  # Complete.
  assert len(calls) == 3

  folder = bucket.local(workdir)
  written = tree(folder)
  assert set(CONTRACT) <= set(written)
  assert _results(folder) == _results(local_workdir)  # gs:// and local: the same sweep.
  assert len([f for f in written if f.startswith('checkpoints/journal/')]) == 3
  events = [f for f in written if f.startswith('tensorboard/')]
  assert {f.split('/')[1] for f in events} == {f'trial_{t:04d}' for t in range(6)}
  scalars = [(e.step, v.tag) for f in events if f.startswith('tensorboard/trial_0000/')
             for e in event_file_loader.EventFileLoader(os.path.join(folder, f)).Load()
             for v in e.summary.value if v.tag == 'val_accuracy']
  assert sorted(scalars) == [(1, 'val_accuracy'), (2, 'val_accuracy')]
  # Journaled chunks' checkpoints were removed through gs:// (train.keep_checkpoints=False).
  assert not [f for f in written if f.startswith('checkpoints/populations/')]
  assert not [f for f in written if f.endswith('.tmp')]
  assert no_local_leak(bucket)
  loaded = sweepfiles.load(workdir)  # The report's reader, through gs://.
  assert loaded.finished and loaded.name == 'test' and len(loaded.results) == 6
  progress = sweepfiles.read_jsonl(os.path.join(workdir, records.PROGRESS_FILE))
  assert {(r['trial'], r['epoch']) for r in progress} == {(t, e) for t in range(6)
                                                          for e in (1, 2)}
  page = compare.write_compare(workdir, local_workdir)
  assert page == f'{workdir}/compare_local.html' and os.path.exists(bucket.local(page))


def test_a_gs_workdir_of_another_config_is_refused_or_overwritten(bucket, config):
  workdir = f'{BUCKET}/runs/other'
  files.write_text(f'{workdir}/config.json', config.to_json_best_effort(indent=2))
  files.write_text(f'{workdir}/checkpoints/journal/old.json', '[]')
  config.optimizer.b1 = 0.8
  with pytest.raises(checks.ConfigError, match=r'optimizer\.b1 was 0\.9, now 0\.8'):
    sweep.open_workdir(config, workdir)
  with pytest.raises(checks.ConfigError, match='was not created by bnlab'):  # No marker.
    sweep.open_workdir(config, workdir, overwrite=True)
  files.write_text(f'{workdir}/{workdir_lib.MARKER}', '{}')  # As bnlab writes first.
  sweep.open_workdir(config, workdir, overwrite=True).close()
  assert tree(bucket.local(workdir)) == sorted(['config.json', workdir_lib.LAYOUT,
                                                workdir_lib.MARKER])
  assert json.loads(files.read_text(f'{workdir}/config.json'))['optimizer']['b1'] == 0.8


def test_the_report_of_a_gs_folder_without_a_sweep_is_one_line(bucket, capsys):
  with pytest.raises(SystemExit) as exited:
    cli.main([f'{BUCKET}/nothing'])
  assert exited.value.code == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'not found' in err and 'config.json' in err


def test_launch_refuses_a_workdir_it_cannot_write(tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'launch.py'), '--config=configs/test.py',
       '--workdir=s3://bucket/run'], cwd=ROOT, capture_output=True, text=True, check=False)
  assert result.returncode == 2
  assert result.stderr.splitlines() == [
      'error: --workdir=s3://bucket/run: unsupported location; valid: a local folder or '
      'gs://BUCKET/PATH']


@pytest.mark.skipif(not files.missing_packages(f'{BUCKET}/run'),
                    reason='google-cloud-storage is installed: launch.py would go to GCS')
def test_launch_names_what_a_gs_workdir_lacks_before_anything_runs():
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'launch.py'), '--config=configs/test.py',
       f'--workdir={BUCKET}/run'], cwd=ROOT, capture_output=True, text=True, check=False)
  assert result.returncode == 2
  assert result.stderr.splitlines() == [
      f'error: --workdir={BUCKET}/run needs packages that are not installed: '
      f'pip install {" ".join(files.missing_packages(BUCKET))}']
