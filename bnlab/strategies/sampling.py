"""Which points of the space to try, as u in [0, 1)^d: uniform, Sobol, a grid, or inside a sub-box.

A spec maps u to a value through its inverse CDF (`Spec.value`), so a sampler only produces u's:
uniform random ones (`random`, space.random_u), a scrambled Sobol sequence (`quasirandom_u`), the
cells of a grid (`grid`) or points of a sub-box (coarse_to_fine); `u_cell` goes back from a value
to where it sits in u.

A sweep's trials are a `Trials`: a sequence of settings made when they are read, so that a sweep
of millions of trials starts training within seconds (making every setting up front took minutes)
and holds only the settings of the chunk it trains. `static_codes` groups the trials into the
programs they compile to from their u's alone.

A conditional spec (`... if optimizer.name == momentum`) still gets its u column in every
sampler, so no other field moves; `space.active` then leaves it out of the trials where its
condition does not hold. Optuna's samplers are asked define-by-run instead (`ask`).
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


def split(total: int, parts: int) -> list[int]:
  """`total` in `parts` near-equal shares, the first ones one larger where it does not divide."""
  return [total // parts + (1 if p < total % parts else 0) for p in range(parts)]


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
    made = [{field: spec.value(u) for (field, spec), u in zip(self.specs.items(), row)}
            for row in rows]
    return [space.active(self.specs, s) for s in made] if space.conditional(self.specs) else made


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
  """The cartesian product of the grid specs, made when read: trial i is the i-th of the
  product, the last field fastest; its u in each field is the middle of its value's cell, which
  `Spec.value` maps back to exactly that value. With conditional specs, see `_active_grid`."""
  space.check_grid(specs)
  sizes = [len(spec.args) for spec in specs.values()]
  if space.conditional(specs):
    return _active_grid(specs, sizes)
  columns = {field: j for j, field in enumerate(specs)}

  def u_rows(trials, fields):
    cells = np.unravel_index(trials, sizes) if sizes else ()
    return _columns([(cells[columns[f]] + 0.5) / sizes[columns[f]] for f in fields], len(trials))
  return Trials(specs, math.prod(sizes), u_rows)


def _active_grid(specs: dict[str, space.Spec], sizes: list[int]) -> Trials:
  """The product's distinct settings once inactive fields are left out, in product order: a
  conditional field multiplies only the combinations where it is active. Made up front (a
  grid is small); trial i is still fixed by the specs alone."""
  cells = np.stack(np.unravel_index(np.arange(math.prod(sizes)), sizes), -1)
  points, seen, keep = (cells + 0.5) / np.asarray(sizes), set(), []
  for i, setting in enumerate(from_u(specs, points).take(range(len(points)))):
    if repr(setting) not in seen:
      seen.add(repr(setting))
      keep.append(i)
  return from_u(specs, points[keep])


def ask(study: Any, specs: dict[str, space.Spec]) -> tuple[Any, dict[str, Any]]:
  """One Optuna trial asked from `study` and its setting. A conditional space is asked
  define-by-run, as an Optuna objective would: each field after the field its condition reads,
  and only where the condition holds, so the sampler never sees an inactive field (TPE models
  each parameter from the trials that have it). Without conditions, one ask of all fields."""
  if not space.conditional(specs):
    trial = study.ask({f: space.optuna_distribution(spec) for f, spec in specs.items()})
    return trial, {f: space.from_optuna(specs[f], trial.params[f]) for f in specs}
  trial, setting = study.ask(), {}
  for field in space.condition_order(specs):
    spec = specs[field]
    if spec.condition is None or spec.condition.holds(setting):
      setting[field] = space.from_optuna(spec, _suggest(trial, field,
                                                        space.optuna_distribution(spec)))
  return trial, {f: setting[f] for f in specs if f in setting}


def _suggest(trial: Any, name: str, distribution: Any) -> Any:
  """trial.suggest_* for `distribution` (Optuna's public define-by-run calls)."""
  import optuna  # pylint: disable=import-outside-toplevel  # The caller's study imported it.
  if isinstance(distribution, optuna.distributions.CategoricalDistribution):
    return trial.suggest_categorical(name, distribution.choices)
  if isinstance(distribution, optuna.distributions.IntDistribution):
    return trial.suggest_int(name, distribution.low, distribution.high, log=distribution.log)
  return trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)


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
