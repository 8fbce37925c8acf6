"""The report on damaged workdir files: one line naming the file and the trial, exit 2, no trace.

A damaged file must not become a quietly different sweep (a metric that is not a number read as
NaN ranks its trial as diverged; a row cut short drops its trial). One tiny sweep is run once;
each test damages a copy of its workdir.
"""

import json
import math
import os
import shutil
import subprocess
import sys

import pytest

from bnlab import sweep
from bnlab.reporting import cli
from bnlab.reporting import sweepfiles
from configs import test as test_config
from tests.conftest import ROOT


@pytest.fixture(scope='module')
def sweep_dir(tmp_path_factory, data_dir):
  """5 trials of one epoch, one program."""
  config = test_config.get_config()
  config.dataset.data_dir = data_dir
  config.sweep.num_trials, config.train.epochs = 5, 1
  config.sweep.space.model.widths = ''
  workdir = str(tmp_path_factory.mktemp('safety') / 'small')
  sweep.run(config, workdir)
  return workdir


@pytest.fixture
def workdir(sweep_dir, tmp_path):
  """A copy of the sweep's workdir to damage."""
  path = str(tmp_path / 'copy')
  shutil.copytree(sweep_dir, path)
  return path


def _edit(workdir, name, change):
  path = os.path.join(workdir, name)
  with open(path, newline='') as f:
    text = f.read()
  with open(path, 'w', newline='') as f:
    f.write(change(text))
  return path


def _lines(text):
  return text.splitlines(keepends=True)


def _set_cell(text, trial, column, value):
  """results.csv with one cell of trial `trial`'s row replaced (the cells hold no commas)."""
  lines = _lines(text)
  header = lines[0].rstrip('\r\n').split(',')
  for i, line in enumerate(lines[1:], 1):
    if line.startswith(f'{trial},'):
      cells = line.rstrip('\r\n').split(',')
      cells[header.index(column)] = value
      lines[i] = ','.join(cells) + '\r\n'
  return ''.join(lines)


def _report_error(workdir, capsys):
  """The report's exit status and its stderr lines, run in this process."""
  with pytest.raises(SystemExit) as done:
    cli.main([workdir])
  return done.value.code, capsys.readouterr().err.strip().splitlines()


def test_an_unreadable_metric_cell_names_the_trial_and_file(workdir):
  results = _edit(workdir, 'results.csv', lambda t: _set_cell(t, 3, 'val_accuracy', 'abc'))
  with open(os.path.join(workdir, 'report.html')) as f:
    before = f.read()
  done = subprocess.run([sys.executable, '-m', 'bnlab.report', workdir], cwd=ROOT,
                        capture_output=True, text=True, timeout=600, check=False)
  assert done.returncode == 2
  assert done.stderr.strip().splitlines() == [
      f"error: {results}: trial 3: val_accuracy 'abc' is not a number"]  # No traceback.
  with open(os.path.join(workdir, 'report.html')) as f:
    assert f.read() == before  # Nothing rebuilt from the damaged file.


def test_an_empty_metric_cell_is_no_value_as_a_diverged_trial_writes_it(workdir, capsys):
  _edit(workdir, 'results.csv', lambda t: _set_cell(t, 3, 'val_accuracy', ''))
  cli.main([workdir])
  assert math.isnan(sweepfiles.load(workdir).results[3].value('val_accuracy'))
  assert capsys.readouterr().err == ''


@pytest.mark.parametrize('column, value, message', [
    ('optimizer.learning_rate', 'fast', "optimizer.learning_rate 'fast' is not a number"),
    ('epochs', 'two', "epochs 'two' is not an integer"),
    ('seconds', '1,5', '14 cells for 13 columns (line 3)'),
])
def test_other_unreadable_cells_name_the_trial(workdir, capsys, column, value, message):
  results = _edit(workdir, 'results.csv', lambda t: _set_cell(t, 1, column, value))
  code, err = _report_error(workdir, capsys)
  assert code == 2 and len(err) == 1
  assert err[0].startswith(f'error: {results}: trial 1: {message}')


def test_a_results_file_cut_mid_row_names_the_trial(workdir, capsys):
  results = _edit(workdir, 'results.csv', lambda t: t[:t.rindex('\r\n', 0, -2) + 12])
  code, err = _report_error(workdir, capsys)
  assert code == 2
  assert err[0].startswith(f'error: {results}: trial 4: ') and 'cut short?' in err[0]


def test_a_row_with_missing_columns_names_the_trial(workdir, capsys):
  def drop_a_cell(text):
    lines = _lines(text)
    lines[3] = lines[3].replace(',ok,', ',', 1)  # Trial 2 loses its status cell.
    return ''.join(lines)
  results = _edit(workdir, 'results.csv', drop_a_cell)
  code, err = _report_error(workdir, capsys)
  assert code == 2 and err == [f'error: {results}: trial 2: 12 cells for 13 columns (line 4; '
                               'cut short?)']


def test_a_results_file_cut_at_a_row_end_names_the_lost_trial(workdir, capsys):
  results = _edit(workdir, 'results.csv', lambda t: ''.join(_lines(t)[:-1]))
  code, err = _report_error(workdir, capsys)
  assert code == 2 and err == [f'error: {results}: trial 4: has no row, though history.jsonl '
                               'has its epochs (cut short?)']


def test_an_empty_results_file_is_named(workdir, capsys):
  results = _edit(workdir, 'results.csv', lambda t: '')
  code, err = _report_error(workdir, capsys)
  assert code == 2 and err == [f'error: {results}: is empty: no header row']


def test_a_history_line_cut_short_names_the_trial_and_line(workdir, capsys):
  history = _edit(workdir, 'history.jsonl', lambda t: ''.join(
      line[:40] + '\n' if i == 2 else line for i, line in enumerate(_lines(t))))
  code, err = _report_error(workdir, capsys)
  assert code == 2 and err[0].startswith(f'error: {history}: trial 2: line 3 is not JSON (')


def test_a_history_value_that_is_no_number_names_the_trial_and_epoch(workdir, capsys):
  history = _edit(workdir, 'history.jsonl', lambda t: t.replace(
      '"val_loss": ', '"val_loss": "x", "was": ', 1))
  code, err = _report_error(workdir, capsys)
  assert code == 2 and err == [f"error: {history}: trial 0, epoch 1: val_loss 'x' is not a number"]


@pytest.mark.parametrize('change, message', [
    (lambda t: t[:len(t) // 2], 'is not valid JSON ('),
    (lambda t: json.dumps({**json.loads(t), 'sweep': {**json.loads(t)['sweep'], 'metric': None}}),
     'has no sweep.metric'),
    (lambda t: '\x00\xff', 'is not valid JSON ('),
])
def test_an_unreadable_config_is_one_line_exit_2(workdir, capsys, change, message):
  config = _edit(workdir, 'config.json', change)
  code, err = _report_error(workdir, capsys)
  assert code == 2 and len(err) == 1 and err[0].startswith(f'error: {config}: {message}')


def test_a_damaged_timing_file_is_named(workdir, capsys):
  timing = _edit(workdir, 'timing.json', lambda t: t[:10])
  code, err = _report_error(workdir, capsys)
  assert code == 2 and err[0].startswith(f'error: {timing}: is not valid JSON (')


def test_a_duplicated_row_is_named(workdir, capsys):
  results = _edit(workdir, 'results.csv', lambda t: t + _lines(t)[2])
  code, err = _report_error(workdir, capsys)
  assert code == 2 and err == [f'error: {results}: trial 1: has two rows']


def test_a_file_that_is_not_text_is_named(workdir, capsys):
  with open(os.path.join(workdir, 'history.jsonl'), 'wb') as f:
    f.write(b'\xff\xfe\x00garbage')
  code, err = _report_error(workdir, capsys)
  assert code == 2 and err == [f'error: {workdir}/history.jsonl: is not UTF-8 text']
