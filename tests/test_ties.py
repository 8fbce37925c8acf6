"""Ties for the best trial: the documented second key orders them, and the terminal's leaderboard
and the report say when the top is shared (and say nothing when it is not)."""

import dataclasses
import math
import random

import pytest

from bnlab import records
from bnlab import prechecks
from bnlab import space
from bnlab.records import TrialRecord
from bnlab.reporting import pages
from bnlab.reporting import results as results_files
from bnlab.reporting import sweepfiles
from configs import test as test_config

FIELD = 'optimizer.learning_rate'


def record(trial, val_accuracy, val_loss, status=records.OK):
  """A finished trial with the two metrics that rank it (the others unknown)."""
  return TrialRecord(trial, {FIELD: 0.001 * (trial + 1)}, status,
                     {'val_accuracy': val_accuracy, 'val_loss': val_loss,
                      'test_accuracy': math.nan, 'train_loss': math.nan}, epochs=2)


def tied_on_accuracy():
  """Four trials share the best accuracy: 2 and 3 also share the lowest loss among them, 4 has
  no loss; trial 1 is second best, trial 5 diverged at a higher value (and never ranks)."""
  return [record(0, 0.9895, 0.05), record(1, 0.98, 0.01), record(2, 0.9895, 0.03),
          record(3, 0.9895, 0.03), record(4, 0.9895, math.nan),
          record(5, 0.999, 0.001, status=records.DIVERGED)]


def sweep_of(results, metric='val_accuracy', mode='max'):
  """The report's view of `results`, as sweepfiles.load would give it for a finished sweep."""
  config = {'sweep': {'metric': metric, 'mode': mode, 'strategy': 'random',
                      'num_trials': len(results)}, 'dataset': {'name': 'digits'}}
  return sweepfiles.Sweep('/nowhere/ties', config, {}, results, {}, True)


def page_texts(sweep):
  """(html, markdown) of the report of `sweep`, without figures."""
  page = pages.Page(sweep, {}, 'not needed here', [])
  return pages.html_body(page), pages.markdown(page)


def test_accuracy_ties_go_to_the_lower_loss_then_the_lower_trial_id():
  ranking = [r.trial for r in records.ranked(tied_on_accuracy(), 'val_accuracy', 'max')]
  # 2 and 3 tie on both keys (trial id decides), 0's loss is higher, 4 has none, 1 is worse.
  assert ranking == [2, 3, 0, 4, 1]


def test_the_ranking_does_not_depend_on_the_order_of_the_records():
  results = tied_on_accuracy()
  want = records.ranked(results, 'val_accuracy', 'max')
  for seed in range(5):
    shuffled = results[:]
    random.Random(seed).shuffle(shuffled)
    assert records.ranked(shuffled, 'val_accuracy', 'max') == want


@pytest.mark.parametrize('metric', ['val_loss', 'train_loss'])
def test_loss_ties_go_to_the_higher_accuracy(metric):
  results = [record(0, 0.95, 0.1), record(1, 0.97, 0.1), record(2, 0.99, 0.2),
             record(3, 0.97, 0.1)]
  for r in results:
    r.metrics['train_loss'] = r.metrics['val_loss']
  assert [r.trial for r in records.ranked(results, metric, 'min')] == [1, 3, 0, 2]
  assert records.top_tie(results, metric, 'min') == (
      f'3 trials tie at 0.1000 {metric}; ranked by val_accuracy (higher first), then trial id')


def test_the_sentence_counts_only_the_trials_that_rank():
  assert records.top_tie(tied_on_accuracy(), 'val_accuracy', 'max') == (
      '4 trials tie at 0.9895 val_accuracy; ranked by val_loss (lower first), then trial id')


def test_no_sentence_without_a_tie_at_the_top():
  # Trials 0 and 2 tie, but below trial 1.
  results = [record(0, 0.95, 0.1), record(1, 0.99, 0.3), record(2, 0.95, 0.2)]
  assert records.top_tie(results, 'val_accuracy', 'max') == ''
  assert records.top_tie([], 'val_accuracy', 'max') == ''
  board = results_files.leaderboard(results, [FIELD], 'val_accuracy', 'max')
  assert ' tie at ' not in board and len(board.splitlines()) == 1 + len(results)
  for text in page_texts(sweep_of(results)):
    assert ' tie at ' not in text


def test_the_terminal_leaderboard_ranks_the_tie_and_says_so_under_it():
  results = tied_on_accuracy()
  header, *rows, last = results_files.leaderboard(results, [FIELD], 'val_accuracy',
                                                  'max').splitlines()
  assert header.split()[:2] == ['rank', 'trial']
  assert [int(row.split()[1]) for row in rows] == [
      r.trial for r in records.ranked(results, 'val_accuracy', 'max')]
  assert last == records.top_tie(results, 'val_accuracy', 'max')


def test_the_report_ranks_the_tie_and_says_so_under_its_leaderboard():
  sweep = sweep_of(tied_on_accuracy())
  _, rows = pages.leaderboard_rows(sweep)
  assert [int(row[1]) for row in rows] == [
      r.trial for r in records.ranked(sweep.results, 'val_accuracy', 'max')]
  sentence = records.top_tie(sweep.results, 'val_accuracy', 'max')
  html_text, markdown_text = page_texts(sweep)
  assert f'<p class="tie">{sentence}.</p>' in html_text
  assert html_text.index('id="leaderboard"') < html_text.index(sentence)
  assert f'\n\n{sentence}.\n' in markdown_text
  assert markdown_text.index('## Leaderboard') < markdown_text.index(sentence)


@pytest.mark.parametrize('n, text', [(0, '0 trials'), (1, '1 trial'), (2, '2 trials')])
def test_counts_are_singular_only_for_one(n, text):
  assert records.count(n, 'trial') == text
  sweep = sweep_of([record(t, 0.9, 0.1) for t in range(n)])
  assert dict(pages.summary_rows(sweep))['state'].startswith(f'finished: {text} seen')


def test_a_grid_says_how_many_settings_its_product_has_not_num_trials():
  specs = space.parse_space({'model': {'norm': "grid('batch', 'layer', 'none')"},
                             'optimizer': {'learning_rate': 'grid(0.1, 0.01)'}})
  sweep = sweep_of([record(t, 0.9, 0.1) for t in range(6)])
  grid = dataclasses.replace(sweep, specs=specs,
                             config={**sweep.config, 'sweep': {**sweep.config['sweep'],
                                                               'strategy': 'grid', 'num_trials': 1}})
  assert dict(pages.summary_rows(grid))['sweep'] == (
      'grid search of 6 settings on digits, val_accuracy (max)')
  assert dict(pages.summary_rows(sweep))['sweep'] == (
      'random search of 6 trials on digits, val_accuracy (max)')
  # The summary is a key-value table: no empty header row above it.
  assert '<table id="summary"><tbody>' in page_texts(grid)[0]


def test_a_conditional_grid_says_up_to_its_products_size():
  swept = {'model': {'norm': "grid('batch', 'group')",
                     'groups': "grid(2, 4) if model.norm == 'group'"}}  # 3 settings of 4.
  specs = prechecks.bind_conditions(space.parse_space(swept), test_config.get_config())
  sweep = sweep_of([record(t, 0.9, 0.1) for t in range(3)])
  grid = dataclasses.replace(sweep, specs=specs,
                             config={**sweep.config, 'sweep': {**sweep.config['sweep'],
                                                               'strategy': 'grid'}})
  assert dict(pages.summary_rows(grid))['sweep'].startswith('grid search of up to 4 settings ')
