"""The report's config tables, strategy sections, curve legends and file joins (issue #21), on
records built by hand: no training."""

import io
import math
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bnlab import records
from bnlab import space
from bnlab.records import TrialRecord
from bnlab.reporting import figures
from bnlab.reporting import pages
from bnlab.reporting import results
from bnlab.reporting import sections
from bnlab.reporting import sweepfiles
from configs import test as test_config

LR, WIDTHS = 'optimizer.learning_rate', 'model.widths'


def record(trial, acc, epochs=3, status=records.OK, **extra):
  """A trial whose val_accuracy climbs to `acc` over `epochs` epochs."""
  history = [{'epoch': e + 1, 'train_loss': 1.0, 'val_loss': 1.0,
              'val_accuracy': acc - 0.1 * (epochs - 1 - e)} for e in range(epochs)]
  return TrialRecord(trial, {LR: 10 ** -(trial % 4 + 1), WIDTHS: (16, 16) if trial % 2 else (8,)},
                     status, {'val_accuracy': acc, 'val_loss': 1 - acc, **extra}, epochs,
                     history=history)


def test_the_config_shows_the_swept_space_and_the_fixed_values_apart():
  config = test_config.get_config().to_dict()
  swept, fixed = sections.config_sections(config)
  assert swept.rows == [['model.bn_momentum', 'one_minus_log_uniform(0.5, 0.99)'],
                        [WIDTHS, 'choice((16, 16), (8,))'],
                        [LR, 'log_uniform(1e-3, 1e-1)']]
  values = dict((f, v) for f, v in fixed.rows)
  # Neither a swept field's base value nor any sweep.space entry; everything else, dotted.
  assert not {'model.bn_momentum', WIDTHS, LR} & set(values)
  assert not [f for f in values if f.startswith('sweep.space')]
  assert values['optimizer.b2'] == '0.999' and values['dataset.name'] == 'digits'
  assert values['model.kwargs'] == '{}' and values['sweep.strategy'] == 'random'
  # The knobs of strategies this sweep does not use are left out; its own stay.
  assert not [f for f in values if f.startswith(('sweep.halving.', 'sweep.tpe.', 'sweep.pbt.'))]
  unused = sum(len(sections.flatten(v)) for k, v in config['sweep'].items()
               if isinstance(v, dict) and k != 'random')
  assert len(values) == len(sections.flatten(config)) - unused - len(swept.rows)
  tpe = {**config, 'sweep': {**config['sweep'], 'strategy': 'tpe'}}
  assert 'sweep.tpe.batch_size' in dict(sections.config_sections(tpe)[1].rows)


def test_paired_differences_are_scipys_paired_t_interval():
  a, b = [0.91, 0.93, 0.90, 0.95], [0.90, 0.915, 0.89, 0.93]
  mean, half, n = sections.paired_difference(a, b)
  low, high = stats.ttest_rel(a, b).confidence_interval(0.95)
  assert (mean - half, mean + half) == (pytest.approx(low), pytest.approx(high)) and n == 4
  # A seed missing on either side (diverged: NaN) drops that pair only.
  assert sections.paired_difference(a + [math.nan], b + [0.5])[2] == 4
  assert math.isnan(sections.paired_difference([0.9], [0.8])[1])


def seeded(trial, per_seed):
  mean, _, half = np.mean(per_seed), 0, stats.t.ppf(0.975, len(per_seed) - 1) * np.std(
      per_seed, ddof=1) / math.sqrt(len(per_seed))
  r = record(trial, float(mean), val_accuracy_ci95=float(half),
             val_accuracy_std=float(np.std(per_seed, ddof=1)))
  r.extras.update(seeds=len(per_seed), val_accuracy_per_seed=list(per_seed))
  return r


def test_seeds_get_mean_interval_and_paired_differences_to_the_best():
  trials = [seeded(0, [0.90, 0.92, 0.91]), seeded(1, [0.95, 0.96, 0.97]),
            seeded(2, [0.94, 0.965, 0.965])]
  spread, paired = sections.seed_sections(trials, [LR, WIDTHS], 'val_accuracy', 'max')
  assert [row[1].split()[0] for row in spread.rows] == ['#1', '#2', '#0']
  assert spread.rows[0][3:5] == [records.fmt(0.96), records.fmt(trials[1].value(
      'val_accuracy_ci95'))]
  assert paired.title.endswith('#1 lr=0.01, widths=(16,16)')
  assert [row[0].split()[0] for row in paired.rows] == ['#2', '#0']
  mean, half, _ = sections.paired_difference([0.95, 0.96, 0.97], [0.90, 0.92, 0.91])
  assert paired.rows[1][1:] == [records.fmt(mean), records.fmt(half), '3', 'yes']
  assert paired.rows[0][-1] == 'no'  # 0.0083 +- 0.03: within noise.
  assert sections.seed_sections([record(0, 0.9)], [LR], 'val_accuracy', 'max') == []


def test_the_running_average_gap_is_shown_only_where_trials_have_it():
  trials = [record(0, 0.9, val_accuracy_running=0.8), record(1, 0.95, val_accuracy_running=0.9),
            record(2, 0.7)]
  config = {'model': {'bn_eval': 'precise'}}
  (gap,) = sections.running_sections(trials, config, [LR], 'val_accuracy', 'max')
  assert [row[0] for row in gap.rows] == ['1', '0']
  assert [float(row[-1]) for row in gap.rows] == [pytest.approx(0.05), pytest.approx(0.1)]
  assert 'median gap over 2 trials: +0.0750' in gap.note and 'precise' in gap.title
  assert sections.running_sections(trials[2:], config, [LR], 'val_accuracy', 'max') == []


def test_rungs_count_who_reached_and_who_stopped_where():
  trials = ([record(t, 0.5, 1, records.PRUNED) for t in range(6)]
            + [record(t, 0.6, 3, records.PRUNED) for t in range(6, 8)]
            + [record(8, 0.9, 9), record(9, 0.2, 1, records.DIVERGED)])
  section = sections.rung_section(trials)
  assert section.header == ['epochs', 'reached', 'stopped pruned', 'stopped ok',
                            'stopped diverged']
  assert section.rows == [['1', '10', '6', '0', '1'], ['3', '3', '2', '0', '0'],
                          ['9', '1', '0', '1', '0']]


def test_hyperband_brackets_follow_the_schedule():
  config = test_config.get_config()
  config.sweep.strategy, config.train.epochs = 'hyperband', 3
  # eta 3, R 3: bracket s=1 has 3 trials at 1 epoch, 1 at 3; s=0 has 2 trials at 3 epochs.
  trials = [record(0, 0.5, 1, records.PRUNED), record(1, 0.9, 3), record(2, 0.4, 1,
                                                                        records.PRUNED),
            record(3, 0.8, 3), record(4, 0.85, 3)]
  rows = sections.hyperband_section(trials, config.to_dict()).rows
  assert rows == [['1', '0-2', '1', '3', '3'], ['1', '0-2', '3', '1', '1'],
                  ['0', '3-4', '3', '2', '2']]


def test_rounds_show_each_rounds_best_and_the_best_so_far():
  config = {'sweep': {'strategy': 'tpe', 'num_trials': 7, 'tpe': {'batch_size': 3},
                      'coarse_to_fine': {'rounds': 3}}}
  assert sections.round_sizes(config) == [3, 3, 1]
  config['sweep']['strategy'] = 'coarse_to_fine'
  assert sections.round_sizes(config) == [3, 2, 2]
  trials = [record(t, acc) for t, acc in enumerate([0.5, 0.7, 0.6, 0.65, 0.8, 0.3, 0.75])]
  trials[4].status = records.DIVERGED
  rows = sections.round_section(trials, [3, 3, 1], 'val_accuracy', 'max').rows
  assert rows == [['0', '0-2', '#1 0.7', '#1 0.7'], ['1', '3-5', '#3 0.65', '#1 0.7'],
                  ['2', '6-6', '#6 0.75', '#6 0.75']]


def test_legend_labels_name_the_setting_briefly():
  assert figures.short_number(0.0032) == '3.2e-3' and figures.short_number(0.25) == '0.25'
  assert figures.short_number(12345.0) == '1.2e4' and figures.short_number((8,)) == '(8,)'
  assert figures.short_number(0.9997) == '0.9997' and figures.short_number(1.0) == '1'
  r = TrialRecord(12, {'model.norm': 'layer', LR: 0.0032, 'a.b': 1, 'a.c': 2, 'a.d': 3},
                  records.OK, {}, 1)
  assert figures.trial_label(r, ['model.norm', LR]) == '#12 norm=layer, lr=3.2e-3'
  assert figures.trial_label(r, list(r.setting)) == '#12 norm=layer, lr=3.2e-3, b=1, c=2, ...'
  assert figures.trial_label(r, []) == '#12'


def drawn(trials, **kw):
  fig, ax = plt.subplots()
  figures.draw_curves(ax, trials, 'val_accuracy', 'max', [LR], **kw)
  labels = [t.get_text() for t in ax.get_legend().get_texts()]
  ylim = ax.get_ylim()
  plt.close(fig)
  return labels, ylim


def test_curves_fit_the_top_trials_and_name_only_the_statuses_present():
  top = [record(t, 0.9 + 0.01 * t) for t in range(3)]
  one_epoch = [record(t, 0.2, 1, records.PRUNED) for t in range(3, 6)]
  labels, (low, high) = drawn(top + one_epoch, top=3)
  assert labels == [figures.trial_label(r, [LR]) for r in top[::-1]] + ['faint: pruned']
  assert 0.65 < low < 0.7 and 0.92 < high < 0.95  # Not stretched down to the 0.2 points.
  labels, _ = drawn(top + [record(9, 0.1, 2, records.DIVERGED)], top=2)
  assert labels[-1] == 'faint: finished below the top, diverged'
  assert drawn(top, top=3)[0] == labels[:0] + [figures.trial_label(r, [LR]) for r in top[::-1]]


def write(workdir, made):
  os.makedirs(workdir)
  config = test_config.get_config()
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort())
  fields = list(space.parse_space(config.sweep.space))
  with open(os.path.join(workdir, 'results.csv'), 'w', newline='') as f:
    f.write(results.results_csv(made, fields))
  with open(os.path.join(workdir, 'history.jsonl'), 'w') as f:
    f.write(results.history_jsonl(made))


def made_trials():
  trials = [record(t, 0.5 + 0.1 * t) for t in range(4)]
  for r in trials:
    r.setting['model.bn_momentum'] = 0.9
  return trials


def test_results_and_history_join_on_trial_and_group_by_widths(tmp_path):
  write(str(tmp_path / 'w'), made_trials())
  table = pd.read_csv(tmp_path / 'w' / 'results.csv')
  history = pd.read_json(tmp_path / 'w' / 'history.jsonl', lines=True)
  joined = history.merge(table, on=['trial', WIDTHS], suffixes=('', '_final'))
  assert len(joined) == len(history) == 12
  best = joined.groupby(WIDTHS)['val_accuracy_final'].max()
  assert best.to_dict() == {'(16, 16)': pytest.approx(0.8), '(8,)': pytest.approx(0.7)}


def test_a_workdir_with_widths_as_json_lists_still_loads(tmp_path):
  workdir = str(tmp_path / 'w')
  made = made_trials()
  write(workdir, made)
  path = os.path.join(workdir, 'history.jsonl')
  with open(path) as f:
    text = f.read()
  with open(path, 'w') as f:  # As history.jsonl was written before issue #21.
    f.write(text.replace('"(16, 16)"', '[16, 16]').replace('"(8,)"', '[8]'))
  loaded = sweepfiles.load(workdir)
  assert [r.setting[WIDTHS] for r in loaded.results] == [r.setting[WIDTHS] for r in made]
  assert results.history_jsonl(loaded.results) == text


def test_the_page_says_the_metric_is_the_last_epochs_and_splits_the_config(tmp_path):
  write(str(tmp_path / 'w'), made_trials())
  sweep = sweepfiles.load(str(tmp_path / 'w'))
  page = pages.Page(sweep, {}, 'test', [])
  assert ('metric', "val_accuracy at each trial's last epoch (sweep.select; results.csv's "
          "best_epoch says which epoch was best, test_accuracy is the last epoch's)") in (
              pages.summary_rows(sweep))
  md, body = pages.markdown(page), pages.html_body(page)
  assert '(last epoch)' in md and 'last epoch)</h3>' in body
  assert '### Swept space' in md and f'| {LR} | log_uniform(1e-3, 1e-1) |' in md
  assert '<h4>Fixed values</h4>' in body and f'<td>{LR}</td><td>0.001</td>' not in body
  assert '"learning_rate"' not in md  # No JSON dump of the config.


def test_the_seeds_section_reads_per_seed_values_back_from_seeds_csv(tmp_path):
  made = [seeded(0, [0.90, 0.92, 0.91]), seeded(1, [0.95, 0.96, 0.97])]
  for r in made:
    r.setting['model.bn_momentum'] = 0.9
  write(str(tmp_path / 'w'), made)
  fields = ['model.bn_momentum', WIDTHS, LR]
  with open(tmp_path / 'w' / 'seeds.csv', 'w', newline='') as f:
    f.write(results.seeds_csv(made, fields))
  sweep = sweepfiles.load(str(tmp_path / 'w'))
  assert [s.title.split(',')[0] for s in sections.strategy_sections(sweep)] == [
      'Spread over seeds (top 2)', 'Paired differences to the best setting']
  seeds = pd.read_csv(io.StringIO(results.seeds_csv(made, fields)))
  assert seeds['val_accuracy_seed2'].tolist() == [0.91, 0.97]
