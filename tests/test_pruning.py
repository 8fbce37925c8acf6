"""sweep.pruner: Optuna's rule, trials stopped and replaced in their slots, compute saved.

The rule is checked against Optuna's own PercentilePruner; a sweep with a pruner against the same
sweep without one (survivors bit-identical, member-epochs counted); a run killed mid-way against
one never interrupted; and every bad value of the new fields.
"""

import csv
import json
import os

import numpy as np
import optuna
import pytest

from bnlab import checks
from bnlab import population as population_lib
from bnlab import records
from bnlab import space
from bnlab import sweep
from bnlab.strategies import pruning


@pytest.mark.parametrize('percentile, warmup, direction', [
    (50.0, 1, 'maximize'), (25.0, 2, 'maximize'), (50.0, 1, 'minimize'), (80.0, 3, 'minimize')])
def test_the_rule_is_optunas_percentile_pruner(percentile, warmup, direction):
  """Others as Optuna's finished trials, the trial's values reported at steps 1..t."""
  rng = np.random.default_rng(0)
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  pruner = pruning.Pruner(percentile, warmup)
  mode = 'max' if direction == 'maximize' else 'min'
  for _ in range(60):
    epoch, count = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    others = rng.normal(size=count)
    own = rng.normal(size=epoch)
    study = optuna.create_study(direction=direction, pruner=optuna.pruners.PercentilePruner(
        percentile, n_startup_trials=0, n_warmup_steps=warmup))
    for value in others:
      finished = study.ask()
      finished.report(float(value), epoch)
      study.tell(finished, float(value))
    trial = study.ask()
    for step, value in enumerate(own, 1):
      trial.report(float(value), step)
    board = pruning.Board()
    for step, value in enumerate(own, 1):
      board.add(0, step, records.oriented(value, mode))
    for t, value in enumerate(others, 1):
      board.add(t, epoch, records.oriented(value, mode))
    ours = pruning.prunes(pruner, board.best(0, epoch), epoch, board.others(0, epoch))
    assert ours == trial.should_prune(), (epoch, others, own)


def test_the_median_pruner_keeps_half_and_needs_others():
  median = pruning.Pruner(50.0, 1)
  assert pruning.prunes(median, 0.1, 1, [0.2, 0.3])
  assert not pruning.prunes(median, 0.25, 1, [0.2, 0.3])  # At the median: kept.
  assert not pruning.prunes(median, 0.0, 1, [])  # Nothing to compare with.
  assert not pruning.prunes(pruning.Pruner(50.0, 2), 0.0, 1, [1.0])  # Still in its warmup.


def _config(config, **overrides):
  values = {'train.epochs': 4, 'sweep.num_trials': 8, 'sweep.space.model.widths': '',
            'train.checkpoint_every': 1, **overrides}
  return space.with_overrides(config, values)


def _rows(workdir):
  with open(os.path.join(workdir, 'results.csv')) as f:
    return {int(r['trial']): {k: v for k, v in r.items() if k != 'seconds'}
            for r in csv.DictReader(f)}


def _count_member_epochs(monkeypatch):
  counted = []
  real = population_lib.Population.run_epoch

  def run_epoch(self, *args, **kwargs):
    counted.append(len(self.trials))
    return real(self, *args, **kwargs)

  monkeypatch.setattr(population_lib.Population, 'run_epoch', run_epoch)
  return counted


def test_pruned_trials_leave_the_program_and_survivors_are_bit_identical(
    config, tmp_path, monkeypatch):
  """Against the same sweep whose pruner never fires (its warmup is the last epoch): the slots
  engine, each trial's data order keyed by its own epochs, every trial run to its end."""
  counted = _count_member_epochs(monkeypatch)
  unpruned = sweep.run(_config(config, **{'sweep.pruner': 'median', 'sweep.pruner_warmup': 4}),
                       str(tmp_path / 'unpruned'))
  unpruned_epochs = sum(counted)
  counted.clear()
  pruned = sweep.run(_config(config, **{'sweep.pruner': 'median'}), str(tmp_path / 'pruned'))
  assert {r.status for r in unpruned} == {records.OK}
  assert sum(counted) < unpruned_epochs  # The population shrank: compute saved, not masked.
  by_trial = {r.trial: r for r in unpruned}
  statuses = {r.status for r in pruned}
  assert records.PRUNED in statuses and records.OK in statuses
  for record in pruned:
    alone = by_trial[record.trial]
    assert record.epochs == 4 if record.status == records.OK else record.epochs < 4
    # Every trial, survivor or pruned, trains bit for bit alike up to where it stopped, though
    # it started in another slot at another epoch, beside other trials, in a shrunk program;
    # its evaluation sums in another order at another member count (as halving's survivors:
    # test_strategies.py).
    for mine, theirs in zip(record.history, alone.history[:record.epochs], strict=True):
      assert mine['train_loss'] == theirs['train_loss'], (record.trial, mine['epoch'])
      for metric in ('val_loss', 'val_accuracy'):
        assert mine[metric] == pytest.approx(theirs[metric], rel=1e-5)
  rows = _rows(str(tmp_path / 'pruned'))
  assert {rows[r.trial]['status'] for r in pruned} == statuses


def test_without_pruning_the_slots_engine_matches_the_plain_sweep(config, tmp_path):
  """A never-firing pruner trains every trial to its end in slots; each member gathers its own
  batches there (its own epochs), so the numbers agree with the plain engine's to rounding."""
  plain = sweep.run(_config(config), str(tmp_path / 'plain'))
  slots = sweep.run(_config(config, **{'sweep.pruner': 'median', 'sweep.pruner_warmup': 4}),
                    str(tmp_path / 'slots'))
  for mine, theirs in zip(slots, plain, strict=True):
    assert mine.trial == theirs.trial and mine.status == theirs.status
    assert mine.value('val_accuracy') == pytest.approx(theirs.value('val_accuracy'), abs=0.05)


def test_a_stopped_trials_slot_goes_to_the_next_trial(config, tmp_path, monkeypatch):
  counted = _count_member_epochs(monkeypatch)
  done = sweep.run(_config(config, **{'sweep.pruner': 'median', 'sweep.num_trials': 10,
                                      'sweep.max_parallel': 4}), str(tmp_path / 'run'))
  assert sorted(r.trial for r in done) == list(range(10))
  assert max(counted) == 4  # One program of four slots, never a second chunk.
  assert sum(r.epochs for r in done) <= sum(counted)
  assert any(r.status == records.PRUNED for r in done)
  # Trials 4-9 started in freed slots: later than epoch 0 of the population.
  assert all(r.epochs >= 1 for r in done)


class Interrupt(Exception):
  pass


def test_a_pruned_sweep_resumes_to_the_uninterrupted_results(config, tmp_path, monkeypatch):
  overrides = {'sweep.pruner': 'median', 'sweep.num_trials': 10, 'sweep.max_parallel': 4}
  sweep.run(_config(config, **overrides), str(tmp_path / 'whole'))
  calls = []
  real = population_lib.Population.run_epoch

  def run_epoch(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == 5:
      raise Interrupt
    return real(self, *args, **kwargs)

  monkeypatch.setattr(population_lib.Population, 'run_epoch', run_epoch)
  with pytest.raises(Interrupt):
    sweep.run(_config(config, **overrides), str(tmp_path / 'killed'))
  monkeypatch.setattr(population_lib.Population, 'run_epoch', real)
  sweep.run(_config(config, **overrides), str(tmp_path / 'killed'))
  assert _rows(str(tmp_path / 'killed')) == _rows(str(tmp_path / 'whole'))


@pytest.mark.parametrize('overrides, message', [
    ({'sweep.pruner': 'mean'}, "sweep.pruner='mean' is not one of: none, median, percentile"),
    ({'sweep.pruner': 'median', 'sweep.strategy': 'halving'},
     "sweep.pruner='median': sweep.strategy='halving' stops trials by its own rule"),
    ({'sweep.pruner': 'median', 'sweep.seeds': 2}, "sweep.seeds=2: sweep.pruner='median' takes"),
    ({'sweep.pruner': 'percentile', 'sweep.pruner_percentile': 100.0},
     'sweep.pruner_percentile=100.0 must lie in (0, 100)'),
    ({'sweep.pruner': 'percentile', 'sweep.pruner_percentile': 0},
     'sweep.pruner_percentile=0.0 must lie in (0, 100)'),
    ({'sweep.pruner': 'median', 'sweep.pruner_warmup': -1},
     'sweep.pruner_warmup=-1 must be a int >= 0'),
])
def test_bad_pruner_fields_are_one_line(config, overrides, message):
  with pytest.raises(records.ConfigError) as e:
    checks.check_config(space.with_overrides(config, overrides))
  assert message in str(e.value)


def test_a_workdir_from_before_the_pruner_fields_still_matches(config, tmp_path):
  """config.json written before sweep.pruner existed: the same config resumes it (no pruner is
  the old behaviour); asking for a pruner names the field."""
  old = json.loads(config.to_json_best_effort())
  for field in ('pruner', 'pruner_warmup', 'pruner_percentile'):
    del old['sweep'][field]
  (tmp_path / 'config.json').write_text(json.dumps(old))
  checks.check_workdir(config, str(tmp_path))
  with pytest.raises(records.ConfigError, match="sweep.pruner was 'none', now 'median'"):
    checks.check_workdir(space.with_overrides(config, {'sweep.pruner': 'median'}), str(tmp_path))
