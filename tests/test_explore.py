"""explore.html: a hand-built sweep's files written by bnlab's writers, read back, made a page."""

import json
import math
import os
import re
import shutil
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from bnlab import records
from bnlab import space
from bnlab.reporting import explore
from bnlab.reporting import results as results_lib
from bnlab.reporting import sweepfiles
from tests.conftest import ROOT

SPACE = {'optimizer': {'learning_rate': 'log_uniform(1e-4, 1e-1)',
                       'b2': 'one_minus_log_uniform(0.9, 0.9999)'},
         'model': {'widths': 'choice((16, 16), (8,), (32,))', 'dropout': 'uniform(0, 0.5)'}}
SPECS = space.parse_space(SPACE)
STATUSES = [records.OK] * 7 + [records.PRUNED, records.PRUNED, records.DIVERGED]


def trial(i, rng, specs=None):
  """Trial i: a random setting, 3 epochs of history (1 when pruned), metrics from the last."""
  setting = {f: s.value(rng.random()) for f, s in (SPECS if specs is None else specs).items()}
  status = STATUSES[i % len(STATUSES)]
  epochs = 1 if status == records.PRUNED else 3
  history = [{'epoch': e, 'train_loss': 1 / e, 'val_loss': 1.2 / e,
              'val_accuracy': 0.5 + 0.4 * rng.random() * e / 3} for e in range(1, epochs + 1)]
  metrics = {m: history[-1].get(m, 0.8) for m in records.METRICS}
  if status == records.DIVERGED:
    metrics = {m: math.nan for m in records.METRICS}
  return records.TrialRecord(trial=i, setting=setting, status=status, metrics=metrics,
                             epochs=epochs, seconds=1.0, history=history,
                             diverged_epoch=2 if status == records.DIVERGED else None)


def write_workdir(workdir, n, metric='val_accuracy', mode='max', sweep_space=None):
  """A workdir as a finished sweep leaves it: config.json, results.csv, history.jsonl."""
  sweep_space = SPACE if sweep_space is None else sweep_space
  specs = space.parse_space(sweep_space)
  rng = np.random.default_rng(0)
  trials = [trial(i, rng, specs) for i in range(n)]
  os.makedirs(workdir, exist_ok=True)
  config = {'sweep': {'space': sweep_space, 'metric': metric, 'mode': mode,
                      'strategy': 'random', 'num_trials': n},
            'train': {'epochs': 3}, 'dataset': {'name': 'digits'}}
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump(config, f)
  for name, text in ((sweepfiles.RESULTS_FILE, results_lib.results_csv(trials, list(specs))),
                     (sweepfiles.HISTORY_FILE, results_lib.history_jsonl(trials))):
    with open(os.path.join(workdir, name), 'w') as f:
      f.write(text)
  return sweepfiles.load(workdir)


@pytest.fixture(scope='module')
def written(tmp_path_factory):
  """(sweep, page path, page text) of 20 trials: ok, pruned after one epoch, diverged."""
  workdir = str(tmp_path_factory.mktemp('explore') / 'small')
  sweep = write_workdir(workdir, 20)
  path = explore.write(workdir, sweep)
  with open(path, encoding='utf-8') as f:
    return sweep, path, f.read()


def test_the_page_is_one_file_with_plotly_embedded_and_nothing_fetched(written):
  sweep, path, text = written
  assert path == os.path.join(sweep.workdir, 'explore.html')
  assert not re.search(r'<script[^>]+src=', text)  # Every script inline: it works offline.
  assert not re.search(r'<link[^>]+href=["\']?https?:', text)
  assert text.count('window.PlotlyConfig') == 1  # plotly.js embedded once, not per figure.
  assert text.count('Plotly.newPlot(') == 2 + len(SPECS)


def plotted(text):
  """The data and layout of every Plotly.newPlot call in a page, decoded from its JSON."""
  decoder, out = json.JSONDecoder(), []
  for call in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', text):
    data, end = decoder.raw_decode(text, call.end())
    layout, _ = decoder.raw_decode(text, re.compile(r',\s*').match(text, end).end())
    out.append((data, layout))
  return out


def test_the_page_plots_every_scored_trial_with_its_whole_setting(written):
  sweep, _, text = written
  figs = plotted(text)
  assert [d[0]['type'] for d, _ in figs] == ['parcoords'] + ['scatter', 'box', 'scatter',
                                                               'scatter'] + ['scatter']
  labels = [ax['label'] for ax in figs[0][0][0]['dimensions']]
  assert labels == ['model.dropout', 'model.widths', '1 - optimizer.b2 (log)',
                    'optimizer.learning_rate (log)', 'status', 'val_accuracy']
  scored = [r for r in sweep.results if r.scored(sweep.metric)]
  for data, _ in figs[1:-1]:  # Every scored trial is one point of each field's plot.
    hovers = [h for trace in data for h in trace['hovertext']]
    assert sorted(hovers) == sorted(explore.hover(r, sweep.specs, sweep.metric) for r in scored)
  for r in scored:
    assert all(f'{f} = {records.fmt(v)}' in explore.hover(r, sweep.specs, sweep.metric)
               for f, v in r.setting.items())
  curve_hovers = {h for trace in figs[-1][0] for h in trace['hovertext']}
  assert {f'<b>trial {r.trial}</b>' for r in sweep.results} == {
      h.split(' (')[0] for h in curve_hovers}


def test_parallel_axes_are_the_fields_on_their_sampling_scale():
  sweep = sweepfiles.Sweep('w', {'sweep': {'metric': 'val_accuracy', 'mode': 'max'}}, SPECS,
                           [trial(i, np.random.default_rng(i)) for i in range(10)], {}, True)
  (par,) = explore.parallel(sweep).data
  dims = {d.label: d for d in par.dimensions}
  shown = [r for r in sweep.results if r.scored('val_accuracy')]
  lr = dims['optimizer.learning_rate (log)']
  np.testing.assert_allclose(lr.values, [math.log10(r.setting['optimizer.learning_rate'])
                                         for r in shown])
  np.testing.assert_allclose(lr.range, [-4, -1])
  # Each tick sits at log10 of the value its label says.
  np.testing.assert_allclose(lr.tickvals, [math.log10(float(t)) for t in lr.ticktext])
  b2 = dims['1 - optimizer.b2 (log)']
  np.testing.assert_allclose(b2.values, [math.log10(1 - r.setting['optimizer.b2'])
                                         for r in shown])
  widths = dims['model.widths']
  assert list(widths.ticktext) == ['(16,16)', '(8,)', '(32,)']
  assert list(widths.values) == [SPECS['model.widths'].args.index(r.setting['model.widths'])
                                 for r in shown]
  assert list(dims['status'].ticktext) == ['ok', 'pruned']
  assert list(dims['val_accuracy'].values) == [r.value('val_accuracy') for r in shown]
  assert list(par.line.color) == [r.value('val_accuracy') for r in shown]
  assert not par.line.reversescale  # Max is better: bright (Viridis' top) is the best.


def test_categorical_fields_are_box_plots_with_every_point_and_numeric_ones_scatters(written):
  sweep, _, _ = written
  boxes = explore.metric_vs(sweep, 'model.widths')
  assert {t.type for t in boxes.data} == {'box'} and all(t.boxpoints == 'all' for t in boxes.data)
  assert sum(len(t.y) for t in boxes.data) == sum(r.scored(sweep.metric) for r in sweep.results)
  assert list(boxes.layout.xaxis.categoryarray) == ['(16,16)', '(8,)', '(32,)']
  lr = explore.metric_vs(sweep, 'optimizer.learning_rate')
  assert {t.type for t in lr.data} == {'scatter'} and lr.layout.xaxis.type == 'log'
  ok = next(t for t in lr.data if t.name == records.OK)
  want = [r for r in sweep.results if r.status == records.OK]
  assert list(ok.x) == [r.setting['optimizer.learning_rate'] for r in want]
  assert list(ok.hovertext) == [explore.hover(r, sweep.specs, sweep.metric) for r in want]


def test_curves_draw_one_line_per_trial_the_top_named_with_their_setting(written):
  sweep, _, _ = written
  fig = explore.curves(sweep)
  ranked = records.ranked([r for r in sweep.results if r.status == records.OK], sweep.metric,
                          sweep.mode)
  named = [t for t in fig.data if t.name.startswith('#')]
  assert [t.name.split(':')[0] for t in named] == [f'#{i + 1} trial {r.trial}'
                                                 for i, r in enumerate(ranked[:explore.TOP])]
  assert 'learning_rate=' in named[0].name and 'widths=' in named[0].name
  grey = {t.name.split(' ')[0]: t for t in fig.data if not t.name.startswith('#')}
  # Pruned trials' single epochs are markers, one line (gap-separated) per trial in the trace.
  assert grey['pruned'].mode == 'lines+markers'
  pruned = [r for r in sweep.results if r.status == records.PRUNED]
  assert list(grey['pruned'].x) == [x for r in pruned for x in (1, None)]
  lines = sum(list(t.x).count(None) for t in fig.data)
  assert lines == sum(bool(r.history) for r in sweep.results)


def test_a_loss_metric_is_bright_when_low_and_a_sweep_without_trials_still_has_a_page(tmp_path):
  sweep = write_workdir(str(tmp_path / 'loss'), 6, metric='val_loss', mode='min')
  assert explore.parallel(sweep).data[0].line.reversescale
  empty = sweepfiles.Sweep(str(tmp_path / 'new'), sweep.config, SPECS, [], {}, False)
  os.makedirs(empty.workdir)
  with open(explore.write(empty.workdir, empty), encoding='utf-8') as f:
    assert '0 trials (none yet)' in f.read()


def test_integer_and_grid_fields_and_a_sweep_of_no_field(tmp_path):
  grid = {'model': {'depth': 'int_uniform(1, 4)'}, 'train': {'batch_size': 'grid(32, 64)'}}
  sweep = write_workdir(str(tmp_path / 'grid'), 8, sweep_space=grid)
  dims = {d.label: d for d in explore.parallel(sweep).data[0].dimensions}
  shown = [r for r in sweep.results if r.scored(sweep.metric)]
  assert list(dims['model.depth'].values) == [r.setting['model.depth'] for r in shown]
  assert list(dims['model.depth'].range) == [1, 4]
  assert list(dims['train.batch_size'].ticktext) == ['32', '64']
  assert {t.type for t in explore.metric_vs(sweep, 'train.batch_size').data} == {'box'}
  single = write_workdir(str(tmp_path / 'one'), 1, sweep_space={})
  assert list(explore.make_figures(single)) == ['curves']
  with open(explore.write(single.workdir, single), encoding='utf-8') as f:
    assert f.read().count('Plotly.newPlot(') == 1


def test_tick_labels_are_short_and_log_ticks_stay_in_range():
  assert [explore.tick_text(v) for v in (0.001, 0.25, 3e-5, 1e-4, 20000.0)] == [
      '0.001', '0.25', '3e-5', '1e-4', '2e4']
  assert explore.log_ticks(1e-4, 1e-1) == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
  assert explore.log_ticks(1e-4, 0.1) == explore.log_ticks(1e-4, 1e-1)
  assert explore.log_ticks(0.02, 0.3) == pytest.approx([0.02, 0.05, 0.1, 0.2])
  assert explore.log_ticks(0.03, 0.04) == [0.03, 0.04]  # No tick inside: the ends.


def test_plotly_is_imported_only_when_a_page_is_written():
  code = 'import sys; from bnlab.reporting import explore; print("plotly" in sys.modules)'
  out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, check=True)
  assert out.stdout.strip() == 'False'


def test_chromium_renders_every_plot(written, tmp_path):
  if shutil.which('chromium') is None:
    pytest.skip('chromium is not on PATH (Debian: apt-get install -y chromium)')
  sweep, path, _ = written
  shot = tmp_path / 'shot.png'
  # One run both screenshots and dumps the DOM once the virtual time has let Plotly draw.
  run = subprocess.run(
      ['chromium', '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
       '--disable-background-networking', '--disable-component-update',
       f'--user-data-dir={tmp_path}/u', '--window-size=1400,2400', '--virtual-time-budget=5000',
       f'--screenshot={shot}', '--dump-dom', 'file://' + path],
      capture_output=True, text=True, timeout=300, check=False)
  assert run.returncode == 0, run.stderr[-2000:]
  dom = run.stdout
  assert dom.count('class="plot-container plotly"') == 2 + len(SPECS)
  assert dom.count('class="parcoords"') == 1
  assert dom.count('class="y-axis"') == len(SPECS) + 2  # The fields, the status, the metric.
  assert dom.count('class="box"') == 6  # Three widths, each with its ok and its pruned box.
  scored = sum(r.scored(sweep.metric) for r in sweep.results)
  assert dom.count('class="point"') >= len(SPECS) * scored  # Each field's plot shows them all.
  pixels = matplotlib.image.imread(str(shot))
  assert pixels.shape[:2] == (2400, 1400) and pixels.std() > 0.05
