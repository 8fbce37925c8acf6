"""Hyperband's bracket schedule: how many configs train to how many epochs, rung by rung.

Li, Jamieson, DeSalvo, Rostamizadeh and Talwalkar, "Hyperband: A Novel Bandit-Based Approach
to Hyperparameter Optimization", JMLR 18 (2018), Algorithm 1. With R the maximum resource per
config and eta the halving rate: s_max = floor(log_eta R), B = (s_max + 1) R, and for
s = s_max .. 0 a bracket of successive halving with n = ceil(B / R * eta**s / (s + 1)) configs
at r = R * eta**-s; rung i has n_i = floor(n * eta**-i) configs at r_i = r * eta**i, and the top
floor(n_i / eta) go on. This module is the schedule only, in exact integers; no training.

Units: R counts `min_epochs`-epoch units, R = max_epochs // min_epochs, and max_epochs must be
a multiple of min_epochs, so that every bracket's last rung is exactly max_epochs.

R not a power of eta (where the paper's r_i = R / eta**(s - i) is fractional): each rung's units
are R / eta**(s - i) rounded to the nearest integer, halves up. The last rung is then exactly
R, the first at least 1 (eta**s <= R), and rungs strictly increase (neighbours differ by a
factor eta >= 2 of a value >= 1). When R is a power of eta this is the paper's r_i exactly.

Accounting: the paper counts every rung in full (n_i * r_i; `paper_budget`), as if each rung
retrained from scratch. In bnlab a survivor continues from its state, so rung i costs each of
its n_i configs only r_i - r_{i-1} epochs (`member_epochs`).
"""

from typing import NamedTuple, Sequence

from bnlab import records


class Rung(NamedTuple):
  configs: int  # n_i: configs that train in this rung.
  epochs: int  # Cumulative epochs each of them has trained at the end of the rung.


class Bracket(NamedTuple):
  s: int  # The paper's bracket index: s + 1 rungs, s halvings.
  rungs: tuple[Rung, ...]


def brackets(max_epochs: int, eta: int = 3, min_epochs: int = 1) -> list[Bracket]:
  """Algorithm 1's brackets, s = s_max first; raises records.ConfigError on a bad input.

  Args:
    max_epochs: the epochs of every bracket's last rung (the paper's R, times min_epochs).
    eta: the halving rate; the best floor(n_i / eta) of each rung go on.
    min_epochs: the epochs of one resource unit (the first rung of the widest bracket).
  Returns:
    One Bracket per s = s_max, ..., 0.
  """
  _check(max_epochs, eta, min_epochs)
  units = max_epochs // min_epochs
  s_max = _floor_log(units, eta)
  out = []
  for s in range(s_max, -1, -1):
    # B / R = s_max + 1 exactly, so n = ceil((s_max + 1) eta**s / (s + 1)) needs no float.
    n = -(-(s_max + 1) * eta**s // (s + 1))
    rungs = tuple(Rung(n // eta**i, min_epochs * _round_div(units, eta**(s - i)))
                  for i in range(s + 1))
    out.append(Bracket(s, rungs))
  return out


def member_epochs(schedule: Bracket | Sequence[Bracket]) -> int:
  """Epochs trained by all members of a bracket (or a schedule), survivors continuing."""
  if isinstance(schedule, Bracket):
    previous = (0,) + tuple(rung.epochs for rung in schedule.rungs[:-1])
    return sum(rung.configs * (rung.epochs - p) for rung, p in zip(schedule.rungs, previous))
  return sum(member_epochs(bracket) for bracket in schedule)


def paper_budget(schedule: Bracket | Sequence[Bracket]) -> int:
  """The paper's resource count: sum of n_i * r_i, every rung counted in full."""
  if isinstance(schedule, Bracket):
    return sum(rung.configs * rung.epochs for rung in schedule.rungs)
  return sum(paper_budget(bracket) for bracket in schedule)


def num_trials(schedule: Sequence[Bracket]) -> int:
  """The configs sampled: each bracket's first rung."""
  return sum(bracket.rungs[0].configs for bracket in schedule)


def describe(schedule: Sequence[Bracket]) -> str:
  """A table of the schedule, one line per bracket: its rungs as configs x epochs."""
  cells = [' '.join(f'{r.configs}x{r.epochs}' for r in b.rungs) for b in schedule]
  width = max(len(c) for c in cells)
  lines = [f'hyperband: {records.count(len(schedule), "bracket")}, '
           f'{records.count(num_trials(schedule), "trial")} '
           '(rungs as configs x cumulative epochs)']
  for bracket, cell in zip(schedule, cells):
    lines.append(f'  s={bracket.s}: {cell:<{width}}  {member_epochs(bracket):>6} member-epochs')
  lines.append(f'  total: {member_epochs(schedule)} member-epochs ({paper_budget(schedule)} '
               'if every rung retrained from scratch, as the paper counts)')
  return '\n'.join(lines)


def _check(max_epochs, eta, min_epochs):
  """One-line errors naming the argument and the reason."""
  for name, value, low in (('eta', eta, 2), ('min_epochs', min_epochs, 1),
                           ('max_epochs', max_epochs, 1)):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
      raise records.ConfigError(f'hyperband: {name}={value!r}, must be an integer >= {low}')
  if max_epochs % min_epochs:
    raise records.ConfigError(f'hyperband: max_epochs={max_epochs} must be a multiple of '
                              f'min_epochs={min_epochs}, so that the last rung is exactly '
                              'max_epochs')


def _floor_log(units, eta):
  """The largest s with eta**s <= units: floor(log_eta units) without float error."""
  s = 0
  while eta**(s + 1) <= units:
    s += 1
  return s


def _round_div(a, b):
  """a / b rounded to the nearest integer, halves up, in exact integer arithmetic."""
  return (2 * a + b) // (2 * b)
