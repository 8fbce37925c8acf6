"""Which points of the space to try, as u in [0, 1)^d: uniform, Sobol, a grid, or inside a sub-box.

A spec maps u to a value through its inverse CDF (`Spec.value`), so a sampler only produces u's:
uniform random ones (`random`, space.random_u), a scrambled Sobol sequence (`quasirandom_u`), the
cells of a grid (`grid`) or points of a sub-box (coarse_to_fine); `u_cell` goes back from a value
to where it sits in u.

A sweep's trials are a `Trials`: a sequence of settings made when they are read, so that a sweep
of millions of trials starts training within seconds (making every setting up front took minutes)
and holds only the settings of the chunk it trains. `static_codes` groups the trials into the
programs they compile to from their u's alone.
"""

import collections.abc
import math
from typing import Any, Callable, Sequence

import numpy as np

from bnlab import space


def quasirandom_u(num_dims: int, seed: Any, num_points: int) -> np.ndarray:
  """The first `num_points` points of one scrambled Sobol sequence seeded by `seed`.

  Drawn in a power of two (where Sobol's balance holds) and cut: point i is the same whatever
  `num_points` is, so raising num_trials extends a quasirandom sweep like a random one.
  """
  from scipy.stats import qmc  # pylint: disable=import-outside-toplevel  # Only Sobol runs pay.
  sobol = qmc.Sobol(num_dims, scramble=True, rng=np.random.default_rng(seed))
  return sobol.random_base2(max(0, math.ceil(math.log2(max(num_points, 1)))))[:num_points]


def settings_from_u(specs: dict[str, space.Spec], points: np.ndarray) -> list[dict[str, Any]]:
  """One {field: value} per row of `points` [n, d], columns in the order of `specs`."""
  return [{field: spec.value(u) for (field, spec), u in zip(specs.items(), row)}
          for row in points]


def quasirandom_trials(specs: dict[str, space.Spec], seed: int,
                       num_trials: int) -> list[dict[str, Any]]:
  return settings_from_u(specs, quasirandom_u(len(specs), seed, num_trials))


def u_cell(spec: space.Spec, value: Any) -> tuple[float, float]:
  """The interval of u that maps to `value`: a point for continuous specs, a cell for discrete."""
  if spec.kind in ('choice', 'grid'):
    i, n = [repr(a) for a in spec.args].index(repr(value)), len(spec.args)
    return i / n, (i + 1) / n
  if spec.kind == 'int_uniform':
    lo, hi = spec.args
    n = hi - lo + 1
    return (value - lo) / n, (value - lo + 1) / n
  u = min(max(spec.quantile(value), 0.0), 1.0)
  return u, u


class Trials(collections.abc.Sequence):
  """`count` settings of `specs`, setting i made from row i of `u_rows(trials, fields)` when it
  is read (`Spec.value`, the one mapping from u to a value whatever the sampler)."""

  def __init__(self, specs: dict[str, space.Spec], count: int,
               u_rows: Callable[[np.ndarray, list[str]], np.ndarray]):
    self.specs, self.count, self._u_rows = specs, count, u_rows

  def __len__(self) -> int:
    return self.count

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.take(range(*index.indices(self.count)))
    if not -self.count <= index < self.count:
      raise IndexError(f'trial {index} of {self.count}')
    return self.take([index % self.count])[0]

  def u(self, trials: Sequence[int], fields: list[str]) -> np.ndarray:
    """[len(trials), len(fields)] the u's of `trials` for `fields`."""
    return self._u_rows(np.asarray(trials, np.int64).reshape(-1), fields)

  def take(self, trials: Sequence[int]) -> list[dict[str, Any]]:
    """The settings of `trials`, in their order."""
    rows = self.u(trials, list(self.specs)).tolist()
    return [{field: spec.value(u) for (field, spec), u in zip(self.specs.items(), row)}
            for row in rows]


def take(settings: Sequence[dict[str, Any]], indices: Sequence[int]) -> list[dict[str, Any]]:
  """The settings at `indices`: a Trials makes them in one go, a list looks them up."""
  if isinstance(settings, Trials):
    return settings.take(indices)
  return [settings[i] for i in indices]


def random(specs: dict[str, space.Spec], seed: int, num_trials: int) -> Trials:
  """space.random_trials, made when read: trial i depends only on (seed, i)."""
  return Trials(specs, num_trials, lambda trials, fields: _columns(
      [space.random_u(seed, trials, f) for f in fields], len(trials)))


def from_u(specs: dict[str, space.Spec], points: np.ndarray) -> Trials:
  """The settings of `points` [n, d] (columns in the order of `specs`), made when read."""
  columns = {field: j for j, field in enumerate(specs)}
  return Trials(specs, len(points), lambda trials, fields: points[trials][
      :, [columns[f] for f in fields]])


def quasirandom(specs: dict[str, space.Spec], seed: int, num_trials: int) -> Trials:
  """quasirandom_trials, made when read (the Sobol points are drawn up front: 0.1 s a million)."""
  return from_u(specs, quasirandom_u(len(specs), seed, num_trials))


def grid(specs: dict[str, space.Spec]) -> Trials:
  """space.grid_trials, made when read: trial i is the i-th of the product, the last field
  fastest; its u in each field is the middle of its value's cell, which `Spec.value` maps back
  to exactly that value."""
  space.check_grid(specs)
  sizes = [len(spec.args) for spec in specs.values()]
  columns = {field: j for j, field in enumerate(specs)}

  def u_rows(trials, fields):
    cells = np.unravel_index(trials, sizes) if sizes else ()
    return _columns([(cells[columns[f]] + 0.5) / sizes[columns[f]] for f in fields], len(trials))
  return Trials(specs, math.prod(sizes), u_rows)


def _columns(columns: list[np.ndarray], rows: int) -> np.ndarray:
  """[rows, len(columns)]: the columns side by side (no columns: no fields are swept)."""
  return np.stack(columns, -1) if columns else np.zeros((rows, 0))


def _cells(spec: space.Spec, u: np.ndarray) -> np.ndarray:
  """Which value each u gives, as a number equal for equal values: the index of a discrete
  spec's value (as `Spec.value` computes it), a continuous spec's u itself."""
  u = np.minimum(np.maximum(u, 0.0), 1.0 - 1e-12)
  if spec.kind in ('choice', 'grid'):
    return np.floor(u * len(spec.args))
  if spec.kind == 'int_uniform':
    return np.floor(u * (spec.args[1] - spec.args[0] + 1))
  return u


def static_codes(settings: Sequence[dict[str, Any]], dynamic: Sequence[str]) -> np.ndarray:
  """[len(settings)] ints, equal for two settings whose fields outside `dynamic` are equal.

  A `Trials` is coded from its u's in whole columns (two million trials in a second); a list of
  settings from the values themselves."""
  if isinstance(settings, Trials):
    fields = [f for f in settings.specs if f not in dynamic]
    if not fields or not len(settings):
      return np.zeros(len(settings), np.int64)
    u = settings.u(np.arange(len(settings)), fields)
    codes, combos = np.zeros(len(settings), np.int64), 1
    for j, field in enumerate(fields):  # Mixed radix over each field's distinct cells.
      values, cells = np.unique(_cells(settings.specs[field], u[:, j]), return_inverse=True)
      if combos * len(values) >= 2**62:  # Continuous static fields: one code per trial.
        return np.arange(len(settings), dtype=np.int64)
      codes, combos = codes * len(values) + cells.reshape(-1), combos * len(values)
    return codes
  codes = {}
  return np.array([codes.setdefault(repr(sorted((f, v) for f, v in s.items() if f not in dynamic)),
                                    len(codes)) for s in settings], np.int64)
