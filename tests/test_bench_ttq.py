"""bench/time_to_quality.py: its smoke mode runs end to end; its arithmetic is checked by hand.

No PyTorch and no timing assertions: the smoke run trains one bnlab strategy on digits and the
report must account for every trial-epoch the workdir's progress.jsonl holds.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from bench import time_to_quality as ttq
from bench import ttq_report as report
from tests.conftest import ROOT


def rows(*pairs):
  return [{'t': t, 'val_accuracy': v} for t, v in pairs]


def test_best_so_far_is_the_running_maximum_in_time_order_and_skips_nan():
  t, best = report.best_so_far(rows((3.0, 0.5), (1.0, 0.7), (2.0, math.nan), (4.0, 0.9)))
  assert t.tolist() == [1.0, 2.0, 3.0, 4.0]
  assert best.tolist() == [0.7, 0.7, 0.7, 0.9]


def test_time_to_a_mark_is_the_first_second_the_best_reaches_it():
  run = rows((1.0, 0.6), (2.0, 0.8), (5.0, 0.79), (7.0, 0.85))
  assert report.time_to(run, 0.8) == 2.0
  assert report.time_to(run, 0.81) == 7.0
  assert report.time_to(run, 0.9) == math.inf
  assert report.final_best(run) == 0.85
  assert math.isnan(report.final_best(rows((1.0, math.nan))))


def test_speedups_pair_seeds_and_divide_the_peers_time_by_the_systems():
  runs = [{'system': 'peer', 'seed': 0, 'rows': rows((10.0, 0.5), (40.0, 0.9))},
          {'system': 'peer', 'seed': 1, 'rows': rows((30.0, 0.895), (60.0, 1.0))},
          {'system': 'fast', 'seed': 0, 'rows': rows((4.0, 0.9))},
          {'system': 'fast', 'seed': 1, 'rows': rows((6.0, 0.99), (12.0, 0.999))}]
  table = report.speedups(runs, 'peer')
  assert set(table) == {'fast'}
  # Seed 0: the peer's best 0.9 at 40 s; every mark (0.9, 0.8955, 0.891) reached by fast at 4 s.
  # Seed 1: best 1.0 at 60 s, never reached by fast; 0.995 at 60 s vs 12 s; 0.99 at 60 vs 6 s.
  assert table['fast'][1.0] == [10.0, 0.0]
  assert table['fast'][0.995] == [10.0, 5.0]
  assert table['fast'][0.99] == [10.0, 10.0]


def test_the_section_says_when_later_seeds_started_with_kept_programs():
  runs = [{'system': 'peer', 'seed': 0, 'rows': rows((10.0, 0.9)), 'test': 0.8, 'exit': 'budget',
           'wall': 10.0},
          {'system': 'fast', 'seed': 0, 'rows': rows((4.0, 0.9)), 'test': 0.8, 'exit': 'done',
           'wall': 4.0}]
  machine = {'budget': 10.0, 'dataset': 'digits', 'date': 'today', 'cores': 2, 'cpu': 'cpu',
             'load_before': (0.0, 0.0, 0.0), 'versions': {}}
  assert '--keep_cache' not in report.markdown(runs, 'peer', {**machine, 'keep_cache': False})
  kept = report.markdown(runs, 'peer', {**machine, 'keep_cache': True})
  assert '--seeds=1 --keep_cache`' in kept and report.KEPT in kept


def test_read_new_rows_waits_for_a_line_still_being_written(tmp_path):
  path = str(tmp_path / 'progress.jsonl')
  assert ttq.read_new_rows(path, 0) == ([], 0)
  with open(path, 'w') as f:
    f.write('{"val_accuracy": 0.5}\n{"val_accu')
  got, offset = ttq.read_new_rows(path, 0)
  assert got == [{'val_accuracy': 0.5}] and offset == len('{"val_accuracy": 0.5}\n')
  with open(path, 'a') as f:
    f.write('racy": 0.6}\n')
  assert ttq.read_new_rows(path, offset)[0] == [{'val_accuracy': 0.6}]


@pytest.fixture(scope='module')
def smoke(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp('ttq')
  result = subprocess.run([sys.executable, os.path.join(ROOT, 'bench', 'time_to_quality.py'),
                           '--smoke', f'--workdir={workdir}', f'--data_dir={data_dir}'],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
  with open(workdir / 'runs.json') as f:
    return workdir, json.load(f), result.stdout


def test_smoke_counts_every_trial_epoch_of_the_workdir(smoke):
  workdir, data, _ = smoke
  (run,) = data['runs']
  assert run['system'] == 'halving' and run['exit'] == 0
  with open(workdir / 'halving_seed0' / 'progress.jsonl') as f:
    written = [json.loads(line) for line in f]
  assert [(r['trial'], r['epoch']) for r in run['rows']] == [
      (r['trial'], r['epoch']) for r in written]
  times = [r['t'] for r in run['rows']]
  assert times == sorted(times) and 0 < times[0] and times[-1] <= run['wall']
  with open(workdir / 'halving_seed0' / 'best.json') as f:
    assert run['test'] == json.load(f)['test_accuracy']


def test_smoke_writes_the_table_and_the_plot(smoke):
  workdir, data, stdout = smoke
  best = report.final_best(data['runs'][0]['rows'])
  assert best > 0.5  # Ten classes: chance is 0.1.
  text = (workdir / 'time_to_quality.md').read_text()
  assert text.startswith('## Time to quality') and '| halving | 0 | ' in text
  assert f'{best:.4f}' in text and text in stdout
  assert (workdir / 'time_to_quality.png').stat().st_size > 10_000
