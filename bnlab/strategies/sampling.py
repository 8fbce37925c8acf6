"""Which points of the space to try, as u in [0, 1)^d: uniform, Sobol, or inside a sub-box.

A spec maps u to a value through its inverse CDF (`Spec.value`), so a sampler only produces u's:
uniform random ones (space.random_trials), a scrambled Sobol sequence (`quasirandom_u`) or points
of a sub-box (coarse_to_fine); `u_cell` goes back from a value to where it sits in u.
"""

import math
from typing import Any

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
