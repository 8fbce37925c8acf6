"""Hyperband's bracket schedule against Li et al., JMLR 2018 (Table 1: R = 81, eta = 3), smaller
schedules written out by hand, the rounding rule for R not a power of eta, and bad inputs."""

import math

import pytest

from bnlab import records
from bnlab.strategies import hyperband_schedule as hb


def _table(schedule):
  return {b.s: [(r.configs, r.epochs) for r in b.rungs] for b in schedule}


# Table 1 of the paper: (n_i, r_i) of every rung of every bracket, for R = 81 and eta = 3.
PAPER_TABLE = {
    4: [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
    3: [(34, 3), (11, 9), (3, 27), (1, 81)],
    2: [(15, 9), (5, 27), (1, 81)],
    1: [(8, 27), (2, 81)],
    0: [(5, 81)],
}


def test_the_papers_worked_example_r81_eta3():
  schedule = hb.brackets(81, eta=3)
  assert [b.s for b in schedule] == [4, 3, 2, 1, 0]
  assert _table(schedule) == PAPER_TABLE
  assert hb.num_trials(schedule) == 81 + 34 + 15 + 8 + 5 == 143


def test_member_epochs_survivors_continue_from_their_state():
  schedule = hb.brackets(81, eta=3)
  # Rung i costs each of its n_i configs r_i - r_{i-1} epochs.
  by_hand = {
      4: 81 * 1 + 27 * (3 - 1) + 9 * (9 - 3) + 3 * (27 - 9) + 1 * (81 - 27),  # 81+54+54+54+54
      3: 34 * 3 + 11 * (9 - 3) + 3 * (27 - 9) + 1 * (81 - 27),  # 102+66+54+54
      2: 15 * 9 + 5 * (27 - 9) + 1 * (81 - 27),  # 135+90+54
      1: 8 * 27 + 2 * (81 - 27),  # 216+108
      0: 5 * 81,
  }
  assert by_hand == {4: 297, 3: 276, 2: 279, 1: 324, 0: 405}
  assert {b.s: hb.member_epochs(b) for b in schedule} == by_hand
  assert hb.member_epochs(schedule) == sum(by_hand.values()) == 1581


def test_paper_budget_counts_every_rung_in_full():
  schedule = hb.brackets(81, eta=3)
  by_hand = {
      4: 81 * 1 + 27 * 3 + 9 * 9 + 3 * 27 + 1 * 81,  # 5 * 81
      3: 34 * 3 + 11 * 9 + 3 * 27 + 1 * 81,  # 102+99+81+81
      2: 15 * 9 + 5 * 27 + 1 * 81,  # 135+135+81
      1: 8 * 27 + 2 * 81,  # 216+162
      0: 5 * 81,
  }
  assert by_hand == {4: 405, 3: 363, 2: 351, 1: 378, 0: 405}
  assert {b.s: hb.paper_budget(b) for b in schedule} == by_hand
  assert hb.paper_budget(schedule) == 1902
  # The paper: each bracket spends about B = (s_max + 1) R = 405; here none spends more.
  assert max(by_hand.values()) == 405


def test_eta2_r8():
  # s_max = 3, B = 32; n = ceil(4 * 2**s / (s + 1)) = 8, 6, 4, 4.
  assert _table(hb.brackets(8, eta=2)) == {
      3: [(8, 1), (4, 2), (2, 4), (1, 8)],
      2: [(6, 2), (3, 4), (1, 8)],
      1: [(4, 4), (2, 8)],
      0: [(4, 8)],
  }


def test_small_r9_eta3_has_three_brackets():
  schedule = hb.brackets(9)
  assert _table(schedule) == {2: [(9, 1), (3, 3), (1, 9)], 1: [(5, 3), (1, 9)], 0: [(3, 9)]}
  assert hb.num_trials(schedule) == 17
  assert hb.member_epochs(schedule) == (9 + 3 * 2 + 1 * 6) + (5 * 3 + 1 * 6) + 3 * 9 == 69


def test_r1_is_one_bracket_of_one_config():
  assert _table(hb.brackets(1)) == {0: [(1, 1)]}


def test_min_epochs_scales_every_rung():
  assert _table(hb.brackets(162, eta=3, min_epochs=2)) == {
      s: [(n, 2 * r) for n, r in rungs] for s, rungs in PAPER_TABLE.items()}


def test_r_not_a_power_of_eta_rounds_to_the_nearest_and_ends_at_r():
  # R = 20, eta = 3: s_max = 2 (9 <= 20 < 27); rungs at 20/9 = 2.2 -> 2, 20/3 = 6.7 -> 7, 20.
  assert _table(hb.brackets(20, eta=3)) == {
      2: [(9, 2), (3, 7), (1, 20)],
      1: [(5, 7), (1, 20)],
      0: [(3, 20)],
  }
  # R = 5, eta = 2: s_max = 2; 5/4 = 1.25 -> 1, 5/2 = 2.5 -> 3 (halves round up), 5.
  assert _table(hb.brackets(5, eta=2)) == {
      2: [(4, 1), (2, 3), (1, 5)],
      1: [(3, 3), (1, 5)],
      0: [(3, 5)],
  }
  # In units of min_epochs: 40 epochs of 2 is R = 20, every rung doubled.
  assert _table(hb.brackets(40, eta=3, min_epochs=2))[2] == [(9, 4), (3, 14), (1, 40)]


@pytest.mark.parametrize('eta', [2, 3, 4, 5])
@pytest.mark.parametrize('min_epochs', [1, 3])
def test_every_schedule_halves_and_ends_at_max_epochs(eta, min_epochs):
  for units in range(1, 200):
    schedule = hb.brackets(units * min_epochs, eta, min_epochs)
    assert [b.s for b in schedule] == list(range(len(schedule) - 1, -1, -1))
    assert eta**schedule[0].s <= units < eta**(schedule[0].s + 1)
    for bracket in schedule:
      epochs = [r.epochs for r in bracket.rungs]
      configs = [r.configs for r in bracket.rungs]
      assert len(epochs) == bracket.s + 1 and epochs[-1] == units * min_epochs
      assert epochs[0] >= min_epochs and all(e % min_epochs == 0 for e in epochs)
      assert all(a < b for a, b in zip(epochs, epochs[1:]))
      assert configs[-1] >= 1 and all(b == a // eta for a, b in zip(configs, configs[1:]))
      if units == eta**schedule[0].s:  # A power of eta: the paper's r_i exactly.
        assert epochs == [min_epochs * units // eta**(bracket.s - i) for i in range(len(epochs))]


def test_s_max_is_exact_where_float_log_is_not():
  assert math.floor(math.log(243, 3)) == 4  # The float answer is wrong: 243 = 3**5.
  assert hb.brackets(243, eta=3)[0].s == 5
  assert hb.brackets(242, eta=3)[0].s == 4


@pytest.mark.parametrize('kwargs, message', [
    (dict(max_epochs=81, eta=1), 'eta=1, must be an integer >= 2'),
    (dict(max_epochs=81, eta=0), 'eta=0'),
    (dict(max_epochs=81, eta=2.5), 'eta=2.5'),
    (dict(max_epochs=81, eta=True), 'eta=True'),
    (dict(max_epochs=0), 'max_epochs=0, must be an integer >= 1'),
    (dict(max_epochs=81.0), 'max_epochs=81.0'),
    (dict(max_epochs=81, min_epochs=0), 'min_epochs=0, must be an integer >= 1'),
    (dict(max_epochs=10, min_epochs=3), 'max_epochs=10 must be a multiple of min_epochs=3'),
    (dict(max_epochs=2, min_epochs=3), 'max_epochs=2 must be a multiple of min_epochs=3'),
])
def test_bad_inputs_are_named_one_line_config_errors(kwargs, message):
  with pytest.raises(records.ConfigError, match=message) as error:
    hb.brackets(**kwargs)
  assert isinstance(error.value, ValueError) and '\n' not in str(error.value)


def test_describe_names_every_bracket_its_rungs_and_the_totals():
  text = hb.describe(hb.brackets(81, eta=3))
  print(text)
  for s, rungs in PAPER_TABLE.items():
    line = next(l for l in text.splitlines() if l.strip().startswith(f's={s}:'))
    assert ' '.join(f'{n}x{r}' for n, r in rungs) in line
  assert '143 trials' in text and '5 brackets' in text
  assert '297 member-epochs' in text and '1581 member-epochs' in text and '1902' in text
