"""The report's parts without a sweep: importance, axis positions, file reading, live monitor."""

import dataclasses
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import optuna
import pytest

from bnlab import monitor
from bnlab import records
from bnlab import space
from bnlab import worker
from bnlab.reporting import figures
from bnlab.reporting import importance
from bnlab.reporting import sweepfiles
from configs import test as test_config
from tests.conftest import ROOT

SPECS = {'lr': space.parse('log_uniform(1e-4, 1e-1)'), 'noise': space.parse('uniform(0, 1)'),
         'b2': space.parse('one_minus_log_uniform(0.9, 0.9999)'),
         'widths': space.parse('choice((16, 16), (8,))')}


def synthetic(n, seed=0, specs=SPECS):
  """Trials whose metric depends on the learning rate alone (peak at 10^-2.5)."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    setting = {f: s.value(rng.random()) for f, s in specs.items()}
    out.append(records.TrialRecord(
        trial=i, setting=setting, status=records.OK, epochs=1,
        metrics={'val_accuracy': 1 - (math.log10(setting['lr']) + 2.5) ** 2 / 4}))
  return out


def flat(trials, value=0.5):
  """The trials with one and the same val_accuracy."""
  return [dataclasses.replace(r, metrics={'val_accuracy': value}) for r in trials]


def test_fanova_finds_the_one_field_that_matters():
  scores, why = importance.importances(synthetic(48), SPECS, 'val_accuracy', 'max')
  assert not why and list(scores)[0] == 'lr' and scores['lr'] > 0.6
  assert sum(scores.values()) == pytest.approx(1.0)


def test_importance_explains_when_it_cannot_be_computed():
  assert importance.importances(synthetic(2), SPECS, 'val_accuracy', 'max') == (
      {}, '2 finished trials; importance needs at least 3')
  assert importance.importances(flat(synthetic(5)), SPECS, 'val_accuracy', 'max')[1] == (
      'every finished trial has val_accuracy=0.5')
  one = {'lr': SPECS['lr']}
  assert importance.importances(synthetic(8, specs=one), one, 'val_accuracy', 'max') == (
      {'lr': 1.0}, '')


def test_a_large_sweep_is_scored_on_a_seeded_sample_of_its_finished_trials(monkeypatch):
  monkeypatch.setattr(importance, 'MAX_TRIALS', 20)
  trials = synthetic(60)
  trials[0].status, trials[1].metrics['val_accuracy'] = records.DIVERGED, float('nan')
  fed = []
  evaluate = optuna.importance.get_param_importances
  monkeypatch.setattr(optuna.importance, 'get_param_importances',
                      lambda study, **kw: fed.append(study) or evaluate(study, **kw))
  scores, note = importance.importances(trials, SPECS, 'val_accuracy', 'max')
  assert note == 'a random 20 of the 58 finished trials'
  assert list(scores)[0] == 'lr' and sum(scores.values()) == pytest.approx(1.0)
  assert importance.importances(trials, SPECS, 'val_accuracy', 'max') == (scores, note)
  chosen = importance.sample(importance.finished(trials, 'val_accuracy'))
  assert [t.params['lr'] for t in fed[0].trials] == [r.setting['lr'] for r in chosen]
  assert len(chosen) == 20 and trials[0] not in chosen and trials[1] not in chosen
  assert importance.sample(trials[:20]) == trials[:20]
  assert importance.importances(trials[2:], SPECS, 'val_accuracy', 'max', seed=1)[0] != scores
  assert importance.importances(flat(trials[2:]), SPECS, 'val_accuracy', 'max')[1] == (
      'every one of a random 20 of the 58 finished trials has val_accuracy=0.5')


def test_the_worker_process_computes_the_importance_as_this_one_does():
  trials = synthetic(48)
  here = importance.importances(trials, SPECS, 'val_accuracy', 'max')
  there = worker.submit(importance.importances, trials, SPECS, 'val_accuracy', 'max')
  assert there() == here and list(here[0])[0] == 'lr'
  assert worker.submit(os.getpid)() != os.getpid()
  with pytest.raises(ValueError, match='invalid literal'):  # Its errors reach the caller.
    worker.submit(int, 'x')()


def _pid_and(value):
  return os.getpid(), value


def test_shared_calls_are_split_between_the_processes_and_come_back_in_order():
  worker.submit(time.sleep, 1.0)  # The worker is busy: this process takes what it can cancel.
  results = worker.share([(_pid_and, (i,)) for i in range(8)])
  assert [value for _, value in results] == list(range(8))
  here = [pid == os.getpid() for pid, _ in results]
  # The worker keeps at most the calls already queued to it (ProcessPoolExecutor: two), from the
  # front; this process took the rest, from the back.
  assert sum(here) >= 6 and here == sorted(here)
  there = worker.share([(_pid_and, (i,)) for i in range(2)])
  assert [value for _, value in there] == [0, 1]
  with pytest.raises(ValueError, match='invalid literal'):
    worker.share([(int, ('x',)), (int, ('3',))])


def test_a_figure_drawn_in_the_worker_is_the_one_drawn_here():
  trials = synthetic(24)
  for field, spec in SPECS.items():
    there = worker.submit(figures.metric_vs, field, spec, trials, 'val_accuracy')()
    assert there == figures.metric_vs(field, spec, trials, 'val_accuracy')


def test_a_dead_worker_leaves_the_work_to_this_process():
  os.kill(worker.submit(os.getpid)(), signal.SIGKILL)
  assert worker.submit(os.getpid)() == os.getpid()  # The broken pool's call, computed here.
  assert worker.submit(os.getpid)() != os.getpid()  # A new worker.


def test_a_script_without_a_main_guard_still_gets_its_report(data_dir, tmp_path):
  # The spawned worker runs such a script again, and fails to start: the report goes on here.
  workdir = str(tmp_path / 'w')
  (tmp_path / 'unguarded.py').write_text(
      'from bnlab import sweep\nfrom configs import test\nconfig = test.get_config()\n'
      f'config.dataset.data_dir = {data_dir!r}\nconfig.sweep.num_trials = 3\n'
      f'config.train.epochs = 1\nsweep.run(config, {workdir!r})\n')
  result = subprocess.run([sys.executable, str(tmp_path / 'unguarded.py')], cwd=ROOT,
                          env={**os.environ, 'PYTHONPATH': ROOT}, capture_output=True,
                          text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'importance_figures runs here instead' in result.stderr
  assert os.path.exists(os.path.join(workdir, 'report.html'))


def _alive(pid):
  """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
  try:
    with open(f'/proc/{pid}/stat', encoding='ascii') as f:
      return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
  except FileNotFoundError:
    return False


@pytest.mark.skipif(not os.path.isdir('/proc/self'), reason='reads /proc')
def test_the_worker_process_does_not_outlive_a_killed_sweep(tmp_path):
  script = ('import os\nfrom bnlab import worker\nif __name__ == "__main__":\n'
            '  print(worker.submit(os.getpid)(), flush=True)\n  input()\n')
  with open(tmp_path / 'stderr', 'w') as stderr:  # Also the killed one's resource tracker's.
    parent = subprocess.Popen([sys.executable, '-c', script], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=stderr, text=True)
  line = parent.stdout.readline()
  assert line.strip().isdigit(), (tmp_path / 'stderr').read_text()
  child = int(line)
  parent.kill()  # SIGKILL: no atexit, no shutdown message to the worker.
  parent.wait()
  for _ in range(600):
    if not _alive(child):
      return
    time.sleep(0.05)
  pytest.fail(f'worker {child} still runs 30 s after its parent was killed')


def test_distributions_follow_the_scale_each_spec_samples():
  specs = {**SPECS, 'depth': space.parse('int_uniform(1, 4)')}
  trials = synthetic(4, specs=specs)
  trials[0].setting['b2'] = 0.99
  first = importance.study(trials, specs, 'val_accuracy', 'max').trials[0]
  lr = first.distributions['lr']
  assert (lr.low, lr.high, lr.log) == (1e-4, 1e-1, True)
  b2 = first.distributions['b2']
  assert (b2.low, b2.high, b2.log) == (pytest.approx(1e-4), pytest.approx(0.1), True)
  assert first.params['b2'] == pytest.approx(0.01)  # 1 - b2, the scale it is sampled on.
  assert first.distributions['widths'].choices == ('(16, 16)', '(8,)')
  assert first.params['widths'] == str(trials[0].setting['widths'])
  assert first.distributions['depth'] == optuna.distributions.IntDistribution(1, 4)


def test_only_finished_trials_feed_the_study():
  trials = synthetic(6)
  trials[0].status, trials[1].status = records.PRUNED, records.DIVERGED
  trials[2].metrics['val_accuracy'] = float('nan')
  study = importance.study(trials, SPECS, 'val_accuracy', 'min')
  assert len(study.trials) == 3 and study.direction == optuna.study.StudyDirection.MINIMIZE


def test_parallel_axes_put_values_on_their_sampling_scale():
  assert figures.position(SPECS['lr'], math.sqrt(1e-4 * 1e-1)) == pytest.approx(0.5)
  assert figures.position(SPECS['b2'], 1 - 10 ** -2.5) == pytest.approx(0.5)  # 1-b2 log scale.
  assert figures.position(SPECS['b2'], 0.99) == pytest.approx(1 / 3)  # 1e-2 in 1e-1..1e-4.
  assert figures.position(SPECS['noise'], 0.25) == 0.25
  assert [figures.position(SPECS['widths'], v) for v in ((16, 16), (8,))] == [0.0, 1.0]


def test_figures_draw_the_trials_whose_setting_is_known_and_skip_the_others():
  # A trial seen only in progress.jsonl may lack a field (a running sweep's report).
  trials = synthetic(12)
  del trials[0].setting['lr'], trials[1].setting['widths']
  for draw in (lambda: figures.parallel(trials, SPECS, 'val_accuracy', 'max'),
               lambda: figures.contour(trials, SPECS, ['lr', 'noise'], 'val_accuracy', 'max'),
               lambda: figures.metric_vs('lr', SPECS['lr'], trials, 'val_accuracy')):
    assert draw().startswith(b'\x89PNG')


def test_values_read_back_from_csv_and_json_get_their_spec_types():
  assert sweepfiles.parse_value(SPECS['widths'], '(8,)') == (8,)
  assert sweepfiles.parse_value(SPECS['widths'], [16, 16]) == (16, 16)
  assert sweepfiles.parse_value(space.parse('int_uniform(1, 4)'), '3') == 3
  assert sweepfiles.parse_value(SPECS['lr'], '0.001') == 0.001


def fake_population(trials, size, settings, epoch, epochs, programs):
  """A population as the monitor sees it: `size` real members first, then padding copies."""
  return types.SimpleNamespace(trials=np.asarray(trials), size=size, epoch=epoch, epochs=epochs,
                               settings=[settings[t] for t in trials],
                               started=np.zeros(len(trials), int), programs=programs)


def test_monitor_counts_each_trial_once_and_tracks_best_and_median(tmp_path):
  config = test_config.get_config()
  settings = [{'optimizer.learning_rate': 0.01 * (i + 1)} for i in range(3)]
  bar = io.StringIO()
  live = monitor.Monitor(str(tmp_path), config, 3 * config.train.epochs, bar_file=bar)
  programs = types.SimpleNamespace(compile_seconds=1.5)
  # A chunk of trials 0, 1 and one of trial 2 padded with a copy of itself (as the engine does).
  for trials, size, accs, diverged in (([0, 1], 2, [.5, .7], [0, 0]),
                                       ([2, 2], 1, [.9, .9], [1, 1])):
    for epoch in (1, 2):
      metrics = {'val_accuracy': np.array(accs), 'val_loss': np.ones(2),
                 'train_loss': np.ones(2), 'diverged': np.array(diverged, bool)}
      live.on_epoch(fake_population(trials, size, settings, epoch, 2, programs), metrics, 0.25)
  live.close()
  assert live.bar.n == live.bar.total == 3 * config.train.epochs
  assert 'val_accuracy best 0.7000 median 0.6000' in bar.getvalue()  # Trial 2 diverged.
  rows = sweepfiles.read_jsonl(os.path.join(tmp_path, records.PROGRESS_FILE))
  assert [(r['trial'], r['epoch']) for r in rows] == [(0, 1), (1, 1), (0, 2), (1, 2), (2, 1),
                                                      (2, 2)]
  assert rows[-1]['diverged'] and rows[0]['optimizer.learning_rate'] == 0.01
  with open(os.path.join(tmp_path, records.TIMING_FILE)) as f:
    timing = json.load(f)
  assert timing['compile_seconds'] == 1.5 and len(timing['programs']) == 1
  assert timing['train_seconds'] == 1.0 and timing['trial_epochs'] == 6
  assert sorted(os.listdir(tmp_path / 'tensorboard')) == ['trial_0000', 'trial_0001']


def _shown_tick_labels(fig, ax):
  fig.canvas.draw()
  low, high = ax.get_xlim()
  return [label for label in ax.get_xticklabels() + ax.get_xticklabels(minor=True)
          if label.get_text() and low <= label.get_position()[0] <= high]


@pytest.mark.parametrize('low, high', [(1.1e-3, 9e-3), (1e-4, 3e-3), (2e-5, 0.5)])
def test_a_log_axis_labels_its_range_without_overlapping_labels(low, high):
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  values = np.geomspace(low, high, 7)
  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.scatter(values, np.arange(7))
  figures.set_scale(ax, 'x', 'log', values)
  labels = _shown_tick_labels(fig, ax)
  boxes = [label.get_window_extent() for label in labels]
  plt.close(fig)
  assert len(labels) >= 2, [label.get_text() for label in labels]
  for i, a in enumerate(boxes):
    for b in boxes[i + 1:]:
      assert not a.overlaps(b), [label.get_text() for label in labels]
