"""train.patience: a trial whose metric stalls for k epochs stops (status `stopped`).

The rule against a brute-force reading of "no improvement in the last k epochs"; a sweep with
early stopping against the same sweep without it (every trial bit-identical up to where it
stopped, member-epochs saved); and every bad value.
"""

import numpy as np
import pytest

from bnlab import checks
from bnlab import records
from bnlab import space
from bnlab import sweep
from bnlab.strategies import pruning
from tests import test_pruning


def test_stalled_is_no_improvement_over_the_last_k_epochs():
  rng = np.random.default_rng(0)
  for _ in range(300):
    values = rng.integers(0, 4, size=int(rng.integers(1, 8))).astype(float)
    values[rng.random(values.size) < 0.15] = np.nan  # Non-finite epochs do not count.
    patience = int(rng.integers(0, 4))
    board = pruning.Board()
    for epoch, value in enumerate(values, 1):
      board.add(7, epoch, value)
    t = values.size
    before, recent = values[:max(t - patience, 0)], values[max(t - patience, 0):]
    best = lambda v: np.max(v[np.isfinite(v)], initial=-np.inf)
    expected = 0 < patience < t and best(recent) <= best(before)
    assert pruning.stalled(board, 7, t, patience) == expected, (values, patience)


def _config(config, **overrides):
  values = {'train.epochs': 6, 'sweep.num_trials': 6, 'sweep.space.model.widths': '',
            'sweep.space.optimizer.learning_rate': 'log_uniform(1e-1, 1.0)', **overrides}
  return space.with_overrides(config, values)


def test_stopped_trials_leave_and_the_others_are_bit_identical(config, tmp_path, monkeypatch):
  counted = test_pruning._count_member_epochs(monkeypatch)
  # A pruner that never fires puts the plain run in the same slots engine (own data orders).
  whole = sweep.run(_config(config, **{'sweep.pruner': 'median', 'sweep.pruner_warmup': 6}),
                    str(tmp_path / 'whole'))
  whole_epochs, counted[:] = sum(counted), []
  early = sweep.run(_config(config, **{'train.patience': 1}), str(tmp_path / 'early'))
  stopped = [r for r in early if r.status == records.STOPPED]
  assert stopped, [r.history for r in early]
  assert sum(counted) < whole_epochs  # Compute saved, not masked.
  by_trial = {r.trial: r for r in whole}
  for record in early:
    alone = by_trial[record.trial]
    assert len(record.history) == record.epochs
    for mine, theirs in zip(record.history, alone.history[:record.epochs], strict=True):
      assert mine['train_loss'] == theirs['train_loss'], (record.trial, mine['epoch'])
    values = [row['val_accuracy'] for row in record.history]
    if record.status == records.STOPPED:  # It stalled at its last epoch, and not before.
      assert record.epochs < 6 and values[-1] <= max(values[:-1])
      assert all(values[e] > max(values[:e]) for e in range(1, record.epochs - 1))
    elif record.status == records.OK:
      assert record.epochs == 6


@pytest.mark.parametrize('overrides, message', [
    ({'train.patience': -1}, 'train.patience=-1 must be a int >= 0'),
    ({'train.patience': 2, 'sweep.strategy': 'pbt'},
     "train.patience=2: sweep.strategy='pbt' stops trials by its own rule; early stopping works"),
    ({'train.patience': 2, 'sweep.seeds': 3}, "sweep.seeds=3: train.patience=2 takes seeds=1"),
])
def test_bad_patience_is_one_line(config, overrides, message):
  with pytest.raises(records.ConfigError) as e:
    checks.check_config(space.with_overrides(config, overrides))
  assert message in str(e.value)
