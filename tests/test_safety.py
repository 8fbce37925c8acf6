"""A user's data around the workdir: what bnlab deletes, locks and refuses (issue 20, in part).

Each test stands for a way a hostile or careless user lost data or got silently wrong results:
--overwrite on a folder bnlab did not write, --overwrite with a config that then fails, two
launches on one workdir, a resume under another device layout, a bool where a number goes.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bnlab import checks
from bnlab import records
from bnlab import space
from bnlab import sweep
from bnlab import workdir as workdir_lib
from tests.conftest import ROOT

SMALL = {'sweep.num_trials': 2, 'sweep.space.model.widths': '', 'train.epochs': 1}


def _small(config, **overrides):
  return space.with_overrides(config, {**SMALL, **overrides})


def _snapshot(folder):
  """{relative path: bytes} of every file under `folder`."""
  out = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        out[os.path.relpath(path, folder)] = f.read()
  return out


def test_overwrite_never_deletes_a_folder_bnlab_did_not_write(config, tmp_path):
  folder = tmp_path / 'thesis'
  folder.mkdir()
  (folder / 'config.json').write_text('{"mine": true}')  # A config.json is no proof of bnlab.
  (folder / 'thesis.tex').write_text('\\chapter{One}')
  before = _snapshot(folder)
  with pytest.raises(records.ConfigError, match='was not created by bnlab'):
    sweep.run(_small(config), str(folder), overwrite=True)
  assert _snapshot(folder) == before


def test_overwrite_deletes_only_after_every_check_that_needs_the_data(config, tmp_path):
  workdir = str(tmp_path / 'run')
  sweep.run(_small(config), workdir)
  before = _snapshot(workdir)
  too_big = _small(config, **{'train.batch_size': 100000})
  with pytest.raises(records.ConfigError, match='train.batch_size=100000 is larger than'):
    sweep.run(too_big, workdir, overwrite=True)
  assert _snapshot(workdir) == before  # The previous results are all still there.
  done = sweep.run(_small(config, **{'optimizer.b1': 0.8}), workdir, overwrite=True)
  assert len(done) == 2 and workdir_lib.owned(workdir)
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['optimizer']['b1'] == 0.8


def test_overwrite_of_a_new_or_empty_folder_just_trains(config, tmp_path):
  """--overwrite on a path that does not exist yet (the launch's lock creates it) or on an empty
  folder has nothing to delete: it trains, as without the flag."""
  for workdir in (str(tmp_path / 'new'), str(tmp_path / 'empty')):
    if workdir.endswith('empty'):
      os.makedirs(workdir)
    assert len(sweep.run(_small(config), workdir, overwrite=True)) == 2
    assert workdir_lib.owned(workdir)


def test_a_new_workdir_is_marked_and_a_users_folder_is_not(config, tmp_path):
  sweep.run(_small(config), str(tmp_path / 'new'))
  assert workdir_lib.owned(str(tmp_path / 'new'))
  assert not os.path.exists(tmp_path / 'new' / workdir_lib.LOCK)  # Released at the end.
  users = tmp_path / 'users'
  users.mkdir()
  (users / 'notes.txt').write_text('keep me')
  sweep.run(_small(config), str(users))  # Writing beside the user's files is allowed...
  assert not workdir_lib.owned(str(users))  # ...but never makes the folder bnlab's to delete.
  assert (users / 'notes.txt').read_text() == 'keep me'


def test_a_second_launch_on_a_workdir_in_use_is_refused_naming_the_holder(config, tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  holder = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])
  try:
    (workdir / workdir_lib.LOCK).write_text(f'{holder.pid} {os.uname().nodename}')
    with pytest.raises(records.ConfigError,
                       match=f'is in use by process {holder.pid} on {os.uname().nodename}'):
      sweep.run(_small(config), str(workdir))
    assert not os.path.exists(workdir / 'config.json')
  finally:
    holder.kill()
    holder.wait()
  # The holder is gone: its lock is taken over and the sweep runs.
  assert len(sweep.run(_small(config), str(workdir))) == 2
  assert not os.path.exists(workdir / workdir_lib.LOCK)


def test_a_resume_under_another_device_layout_is_refused_naming_both(config, tmp_path):
  workdir = str(tmp_path / 'run')
  config = _small(config, **{'train.epochs': 2, 'train.checkpoint_every': 1})
  sweep.run(config, workdir)
  os.remove(os.path.join(workdir, 'checkpoints', 'complete.json'))  # As if it had been killed.
  path = os.path.join(workdir, workdir_lib.LAYOUT)
  with open(path) as f:
    layout = json.load(f)
  assert layout == workdir_lib.layout()
  layout['device_count'] = 7
  with open(path, 'w') as f:
    json.dump(layout, f)
  with pytest.raises(records.ConfigError, match=r'was trained on 7 cpu device\(s\).*this run has '
                                                r'1 cpu device\(s\)'):
    sweep.run(config, workdir)


@pytest.mark.parametrize('field, value, message', [
    ('train.epochs', True, "train.epochs=True must be a int like configs/default.py's 10"),
    ('sweep.num_trials', False, 'sweep.num_trials=False must be a int'),
    ('model.groups', True, 'model.groups=True must be a int'),
])
def test_a_bool_is_not_a_number(config, field, value, message):
  section, key = field.split('.')
  config[section][key] = value
  with pytest.raises(checks.ConfigError, match='^' + message.replace('(', r'\(')):
    checks.check_config(config)


def _launch(*args, cwd=None):
  return subprocess.run([sys.executable, os.path.join(ROOT, 'launch.py'),
                         '--config=configs/test.py', *args], cwd=cwd or ROOT,
                        capture_output=True, text=True, timeout=300, check=False)


def test_a_stray_argument_is_one_line_not_a_page_of_usage(tmp_path):
  result = _launch(f'--workdir={tmp_path}/w', 'epochs=3')
  assert result.returncode == 2 and 'Traceback' not in result.stderr
  assert result.stderr.splitlines() == [
      'error: unexpected arguments epochs=3: every setting is a flag, --name=value '
      '(--config.x.y=value for a config field)']
  assert not os.path.exists(tmp_path / 'w')


@pytest.mark.parametrize('where', ['file', 'under_a_file'])
def test_a_workdir_that_is_or_sits_under_a_file_is_one_line(tmp_path, where):
  blocker = tmp_path / 'notes.txt'
  blocker.write_text('keep me')
  workdir = blocker if where == 'file' else blocker / 'run'
  result = _launch(f'--workdir={workdir}')
  assert result.returncode == 2 and 'Traceback' not in result.stderr
  assert result.stderr.splitlines() == [
      f'error: --workdir={workdir}: {blocker} is a file, not a folder']
  assert blocker.read_text() == 'keep me'


def test_ctrl_c_says_in_one_line_how_to_resume(data_dir, tmp_path):
  workdir = tmp_path / 'run'
  args = ['--config=configs/test.py', f'--workdir={workdir}',
          f'--config.dataset.data_dir={data_dir}', '--config.train.epochs=300',
          '--config.sweep.space.model.widths=']
  # A shell that starts a job in the background (as CI may) ignores SIGINT for it, and Python
  # keeps an ignored SIGINT ignored: launch.py gets Python's own handler, as from a terminal.
  wrapper = ('import runpy, signal, sys; '
             'signal.signal(signal.SIGINT, signal.default_int_handler); '
             f'sys.argv = ["launch.py"] + {args!r}; '
             'runpy.run_path("launch.py", run_name="__main__")')
  process = subprocess.Popen([sys.executable, '-c', wrapper], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  progress = workdir / records.PROGRESS_FILE
  deadline = time.monotonic() + 300
  while time.monotonic() < deadline and not (progress.exists() and progress.read_text()):
    time.sleep(0.05)  # Until it has trained an epoch.
  process.send_signal(signal.SIGINT)
  _, err = process.communicate(timeout=120)
  assert process.returncode == 130, err[-2000:]
  assert 'Traceback' not in err
  assert err.strip().splitlines()[-1] == (
      f'error: stopped (Ctrl-C); run the same command again to resume {workdir} from its last '
      'checkpoint')
  assert not os.path.exists(workdir / workdir_lib.LOCK)  # Released on the way out.
