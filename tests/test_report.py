"""The sweep report on a small real sweep: files, HTML, Chromium, rebuilds, TensorBoard, timing."""

import base64
import csv
import html.parser
import io
import json
import os
import re
import shutil
import subprocess
import sys

import jax
import matplotlib.image
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.util import tensor_util

from bnlab import records
from bnlab import sweep
from bnlab.reporting import importance
from bnlab.reporting import sweepfiles
from configs import test as test_config
from tests.conftest import ROOT

VOID = {'meta', 'img', 'br', 'hr', 'link', 'input'}


@pytest.fixture(scope='module')
def sweep_dir(tmp_path_factory, data_dir):
  """8 trials in one bucket (two chunks of 4 share one program), 2 epochs, a categorical field."""
  config = test_config.get_config()
  config.dataset.data_dir = data_dir
  config.sweep.num_trials = 8
  config.sweep.space.model.widths = ''
  config.sweep.space.optimizer.b1 = 'choice(0.8, 0.9)'
  workdir = str(tmp_path_factory.mktemp('report') / 'small')
  sweep.run(config, workdir)
  return workdir


def run_report(*args):
  return subprocess.run([sys.executable, '-m', 'bnlab.report', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600, check=False)


def read_csv(workdir):
  with open(os.path.join(workdir, 'results.csv')) as f:
    return list(csv.DictReader(f))


class Page(html.parser.HTMLParser):
  """Checks that tags nest, collects <img> sources and the leaderboard's cells."""

  def __init__(self, text):
    super().__init__()
    self.stack, self.images, self.rows, self.errors, self.table = [], [], [], [], None
    self.feed(text)
    self.close()

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    if tag == 'img':
      self.images.append(attrs['src'])
    if tag == 'table':
      self.table = attrs.get('id')
    if tag == 'tr' and self.table == 'leaderboard':
      self.rows.append([])
    if tag not in VOID:
      self.stack.append(tag)

  def handle_endtag(self, tag):
    if not self.stack or self.stack.pop() != tag:
      self.errors.append(tag)

  def handle_data(self, data):
    if self.stack and self.stack[-1] in ('td', 'th') and self.table == 'leaderboard':
      self.rows[-1].append(data)


def decode_png(uri):
  assert uri.startswith('data:image/png;base64,'), uri[:40]
  return matplotlib.image.imread(io.BytesIO(base64.b64decode(uri.split(',', 1)[1])), 'png')


def test_every_image_is_embedded_non_blank_and_linked_from_the_markdown(sweep_dir):
  with open(os.path.join(sweep_dir, 'report.html')) as f:
    page = Page(f.read())
  assert not page.errors and not page.stack
  fields = ['model.bn_momentum', 'optimizer.b1', 'optimizer.learning_rate']
  expected = ['importance', 'contour', 'parallel'] + [f'metric_vs_{f}' for f in fields] + ['curves']
  assert len(page.images) == len(expected)
  for uri in page.images:
    pixels = decode_png(uri)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0
  with open(os.path.join(sweep_dir, 'report.md')) as f:
    linked = re.findall(r'!\[[^]]*\]\((plots/[^)]+)\)', f.read())
  assert linked == [f'plots/{name}.png' for name in expected]
  for path in linked:
    assert os.path.getsize(os.path.join(sweep_dir, path)) > 0


def by_rank(row):
  """The documented ranking: val_accuracy, then val_loss lower first, then trial id."""
  return (-float(row['val_accuracy']), float(row['val_loss']), int(row['trial']))


def test_the_leaderboard_ranks_results_csv_with_every_swept_field(sweep_dir):
  with open(os.path.join(sweep_dir, 'report.html')) as f:
    header, *rows = Page(f.read()).rows
  csv_rows = sorted(read_csv(sweep_dir), key=by_rank)
  assert header[:4] == ['rank', 'trial', 'status', 'val_accuracy']
  assert header[-3:] == ['model.bn_momentum', 'optimizer.b1', 'optimizer.learning_rate']
  assert [int(r[1]) for r in rows] == [int(r['trial']) for r in csv_rows]
  for row, want in zip(rows, csv_rows):
    assert float(row[3]) == pytest.approx(float(want['val_accuracy']), rel=1e-3)
    assert float(row[-2]) == float(want['optimizer.b1'])


def test_chromium_opens_the_report_and_shows_the_leaderboard(sweep_dir, tmp_path):
  if shutil.which('chromium') is None:
    pytest.skip('chromium is not on PATH (Debian: apt-get install -y chromium)')
  flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--disable-component-update', '--no-first-run', f'--user-data-dir={tmp_path}/u',
           '--window-size=1280,1000']
  url = 'file://' + os.path.join(sweep_dir, 'report.html')
  shot = tmp_path / 'shot.png'
  run = lambda *a: subprocess.run(['chromium', *flags, *a, url], capture_output=True, text=True,
                                  timeout=300, check=False)
  screenshot, dom = run(f'--screenshot={shot}'), run('--dump-dom')
  assert screenshot.returncode == 0 and dom.returncode == 0, screenshot.stderr[-2000:]
  pixels = matplotlib.image.imread(str(shot))
  assert pixels.shape[:2] == (1000, 1280) and pixels.std() > 0.05  # Text, tables and plots.
  best = min(read_csv(sweep_dir), key=by_rank)
  rows = Page(dom.stdout).rows
  assert rows[0][:2] == ['rank', 'trial'] and rows[1][:2] == ['1', best['trial']]


def killed_copy(sweep_dir, tmp_path):
  """The workdir as a kill before the end leaves it: no results, last progress line cut."""
  workdir = str(tmp_path / 'killed')
  shutil.copytree(sweep_dir, workdir)
  for name in ('results.csv', 'history.jsonl', 'best.json', 'report.html', 'report.md'):
    os.remove(os.path.join(workdir, name))
  path = os.path.join(workdir, records.PROGRESS_FILE)
  with open(path) as f:
    text = f.read()
  with open(path, 'w') as f:
    f.write(text[:-40])
  return workdir


def test_a_killed_sweep_is_rebuilt_from_progress_alone(sweep_dir, tmp_path):
  workdir = killed_copy(sweep_dir, tmp_path)
  result = run_report(workdir)
  assert result.returncode == 0, result.stderr[-2000:]
  assert os.path.getsize(os.path.join(workdir, 'report.html')) > 0
  live = {r.trial: r for r in sweepfiles.load(workdir).results}
  final = {int(r['trial']): r for r in read_csv(sweep_dir)}
  cut = max(live)  # Its last epoch's line was cut: it stopped one epoch short.
  assert live[cut].status == records.PARTIAL and live[cut].epochs == 1
  for trial, row in final.items():
    if trial != cut:
      assert live[trial].status == records.TRAINED
      assert live[trial].value('val_accuracy') == float(row['val_accuracy'])
      assert live[trial].setting['optimizer.learning_rate'] == float(
          row['optimizer.learning_rate'])


def test_pruned_diverged_and_unknown_statuses_are_shown_not_ranked_as_finished(sweep_dir,
                                                                               tmp_path):
  workdir = str(tmp_path / 'statuses')
  shutil.copytree(sweep_dir, workdir)
  rows = read_csv(workdir)
  for row, status in zip(rows, ('pruned', 'diverged', 'mystery')):
    row['status'] = status
  rows[1]['val_accuracy'] = ''
  with open(os.path.join(workdir, 'results.csv'), 'w') as f:
    writer = csv.DictWriter(f, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  assert run_report(workdir).returncode == 0
  loaded = sweepfiles.load(workdir)
  finished = importance.study(loaded.results, loaded.specs, 'val_accuracy', 'max')
  assert len(finished.trials) == len(rows) - 3
  with open(os.path.join(workdir, 'report.html')) as f:
    board = Page(f.read()).rows[1:]
  assert {r[2] for r in board} == {'ok', 'pruned', 'mystery'} and len(board) == len(rows) - 1


def test_compare_puts_two_sweeps_side_by_side(sweep_dir, tmp_path):
  other = str(tmp_path / 'other')
  shutil.copytree(sweep_dir, other)
  with open(os.path.join(other, 'config.json')) as f:
    config = json.load(f)
  config['seed'] = 7
  with open(os.path.join(other, 'config.json'), 'w') as f:
    json.dump(config, f)
  result = run_report(sweep_dir, '--compare', other)
  assert result.returncode == 0, result.stderr[-2000:]
  with open(os.path.join(sweep_dir, 'compare_other.html')) as f:
    text = f.read()
  page = Page(text)
  assert not page.errors and len(page.images) > 2
  assert '<td>seed</td><td>0</td><td>7</td>' in text


def test_a_folder_without_config_is_one_line_exit_2(tmp_path):
  result = run_report(str(tmp_path))
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      f'error: {tmp_path}/config.json not found: a sweep workdir holds config.json']


def test_tensorboard_has_one_run_per_trial_with_its_scalars_and_hparams(sweep_dir):
  with open(os.path.join(sweep_dir, 'history.jsonl')) as f:
    history = [json.loads(line) for line in f]
  runs = sorted(os.listdir(os.path.join(sweep_dir, 'tensorboard')))
  assert runs == [f'trial_{t:04d}' for t in range(8)]
  for trial in (0, 5):
    acc = event_accumulator.EventAccumulator(
        os.path.join(sweep_dir, 'tensorboard', f'trial_{trial:04d}'))
    acc.Reload()
    want = [h for h in history if h['trial'] == trial]
    got = acc.Tensors('val_accuracy')
    assert [e.step for e in got] == [h['epoch'] for h in want]
    np.testing.assert_allclose([float(tensor_util.make_ndarray(e.tensor_proto)) for e in got],
                               [h['val_accuracy'] for h in want], rtol=1e-6)
    content = acc.PluginTagToContent('hparams')['_hparams_/session_start_info']
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert start.hparams['optimizer.learning_rate'].number_value == pytest.approx(
        want[0]['optimizer.learning_rate'])
    assert start.hparams['trial'].number_value == trial


def test_timing_counts_each_compiled_program_once_and_names_the_device(sweep_dir):
  with open(os.path.join(sweep_dir, 'timing.json')) as f:
    timing = json.load(f)
  assert timing['device_kind'] == jax.devices()[0].device_kind
  assert timing['device_count'] == jax.device_count()
  assert len(timing['programs']) == 1 and timing['programs'][0]['members'] == 4
  assert timing['compile_seconds'] == timing['programs'][0]['compile_seconds'] > 0
  assert timing['trial_epochs'] == 8 * 2
  assert 0 < timing['train_seconds'] < timing['wall_seconds']
