"""What a running sweep writes carries each trial's setting, for every strategy, and its plan holds.

The monitor reads each trial's setting from the population that trains it, so trials that an
adaptive strategy (tpe, coarse_to_fine) proposes after its first batch reach progress.jsonl and
TensorBoard with their setting too, and a report rebuilt from a sweep killed mid-way has every
field. Also Hyperband end to end: its schedule trained through the strategy protocol.
"""

import json
import os

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from bnlab import data as data_lib
from bnlab import population as population_lib
from bnlab import records
from bnlab import space
from bnlab import strategies
from bnlab import sweep
from bnlab.reporting import pages
from bnlab.reporting import sweepfiles
from bnlab.strategies import hyperband_schedule
from tests import test_resume
from tests.conftest import train_trials

# Two widths, so that every batch or round trains as two programs.
ADAPTIVE = {
    'tpe': {'sweep.strategy': 'tpe', 'sweep.num_trials': 9, 'sweep.tpe.batch_size': 3},
    'coarse_to_fine': {'sweep.strategy': 'coarse_to_fine', 'sweep.num_trials': 9,
                       'sweep.coarse_to_fine.rounds': 3},
}


def _config(config, overrides):
  return space.with_overrides(config, {'train.epochs': 1, 'sweep.max_parallel': 4,
                                       **overrides})


def _progress(workdir):
  with open(os.path.join(workdir, records.PROGRESS_FILE)) as f:
    return [json.loads(line) for line in f]


def _hparams(workdir, trial):
  acc = event_accumulator.EventAccumulator(
      os.path.join(workdir, 'tensorboard', f'trial_{trial:04d}'))
  acc.Reload()
  content = acc.PluginTagToContent('hparams')['_hparams_/session_start_info']
  return plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams


@pytest.mark.parametrize('strategy', list(ADAPTIVE))
def test_every_progress_row_and_tensorboard_run_carries_its_trials_setting(config, tmp_path,
                                                                          strategy):
  config = _config(config, ADAPTIVE[strategy])
  specs = sweep.prepare(config)
  done = sweep.run(config, str(tmp_path))
  rows = _progress(str(tmp_path))
  assert sorted(r['trial'] for r in rows) == list(range(9))  # One epoch each.
  settings = {r.trial: r.setting for r in done}
  for row in rows:
    assert {f: sweepfiles.parse_value(specs[f], row[f]) for f in specs} == pytest.approx(
        settings[row['trial']])
  for trial in (0, 8):  # The first batch's and the last's.
    hparams = _hparams(str(tmp_path), trial)
    assert hparams['optimizer.learning_rate'].number_value == pytest.approx(
        settings[trial]['optimizer.learning_rate'])
    assert hparams['model.widths'].string_value == str(settings[trial]['model.widths'])
  # The plan is what trained: the progress bar's total is the rows written.
  plan = strategies.STRATEGIES[strategy].plan(config, specs)
  assert (plan.trials, plan.trial_epochs) == (9, len(rows))


@pytest.mark.parametrize('strategy', list(ADAPTIVE))
def test_the_report_rebuilds_from_a_sweep_killed_after_its_second_batch(config, tmp_path,
                                                                        monkeypatch, strategy):
  config = _config(config, ADAPTIVE[strategy])
  specs = sweep.prepare(config)
  real = population_lib.Population.run_epoch

  def run_epoch(self, *args, **kwargs):  # Killed as the third batch (trials 6-8) starts.
    if self.trials.max() >= 6:
      raise test_resume.Interrupt
    return real(self, *args, **kwargs)

  with monkeypatch.context() as patch:
    patch.setattr(population_lib.Population, 'run_epoch', run_epoch)
    with pytest.raises(test_resume.Interrupt):
      sweep.run(config, str(tmp_path))
  assert not os.path.exists(tmp_path / 'results.csv')
  loaded = sweepfiles.load(str(tmp_path))
  assert sorted(r.trial for r in loaded.results) == list(range(6))  # Two batches.
  assert all(set(r.setting) == set(specs) for r in loaded.results)
  pages.build(str(tmp_path))
  for field in specs:
    assert os.path.getsize(tmp_path / 'plots' / f'metric_vs_{field}.png') > 0
  assert os.path.getsize(tmp_path / 'plots' / 'parallel.png') > 0


HYPERBAND = {'sweep.strategy': 'hyperband', 'sweep.hyperband.eta': 2,
             'sweep.hyperband.min_epochs': 1, 'train.epochs': 4, 'sweep.max_parallel': 4,
             'sweep.space.model.widths': ''}


def test_hyperband_trains_its_schedule_through_the_protocol(config, tmp_path):
  config = space.with_overrides(config, HYPERBAND)
  schedule = hyperband_schedule.brackets(4, 2, 1)
  done = sweep.run(config, str(tmp_path))
  assert len(done) == hyperband_schedule.num_trials(schedule) == 4 + 3 + 3
  assert [r.trial for r in done] == list(range(10))
  first = 0
  for bracket in schedule:  # Each bracket: how many trials stopped at each of its rungs.
    trials = done[first:first + bracket.rungs[0].configs]
    stopped = [r.epochs for r in trials]
    for rung, after in zip(bracket.rungs, bracket.rungs[1:] + (None,)):
      leaving = rung.configs - (after.configs if after else 0)
      assert stopped.count(rung.epochs) == leaving, (bracket, stopped)
    assert sum(r.status == 'ok' for r in trials) == bracket.rungs[-1].configs
    first += len(trials)
  assert sum(r.epochs for r in done) == hyperband_schedule.member_epochs(schedule)
  assert len(_progress(str(tmp_path))) == hyperband_schedule.member_epochs(schedule)
  # Trial i's setting is random search's trial i: brackets take consecutive trials.
  settings = space.random_trials(sweep.prepare(config), config.seed, 10)
  assert [r.setting for r in done] == settings
  with open(tmp_path / 'results.csv') as f:
    assert len(f.readlines()) == 11


def test_a_hyperband_bracket_survivor_continues_exactly(config, tmp_path):
  # The widest bracket's survivor trained 4 epochs; re-run as a plain trial, same curve.
  config = space.with_overrides(config, HYPERBAND)
  done = sweep.run(config, str(tmp_path))
  survivor = next(r for r in done[:4] if r.status == 'ok')
  data, num_classes = data_lib.load(config.dataset)
  (alone,) = train_trials([space.with_overrides(config, survivor.setting)], [survivor.trial],
                          data, num_classes, config.seed, 4)
  np.testing.assert_allclose([h['val_loss'] for h in survivor.history],
                             [h['val_loss'] for h in alone.history], rtol=1e-5)
