"""Reading and checking one config field: the one-line errors every layer's checks are made of.

Each check names the field, its value and what it may be, and raises records.ConfigError; the
strategies' and models' own checks and bnlab.checks are built from these.
"""

from typing import Any, Iterable

import ml_collections

from bnlab import records
from bnlab import space

ConfigError = records.ConfigError
get_field = space.get_field


def has_field(config: Any, field: str) -> bool:
  """Whether `field` names a field (not a section) of `config`."""
  try:
    value = get_field(config, field)
  except (KeyError, TypeError, AttributeError):
    return False
  return not hasattr(value, 'items')


def choice(config: ml_collections.ConfigDict, field: str, valid: Iterable[Any]) -> None:
  value = get_field(config, field)
  valid = list(valid)
  if isinstance(value, bool) or value not in valid:
    raise ConfigError(f'{field}={value!r} is not one of: {", ".join(map(str, valid))}')


def positive(config: ml_collections.ConfigDict, field: str, minimum: int = 1,
             kind: type = int) -> None:
  """An int (or `kind`) >= minimum; a bool is not an int."""
  value = get_field(config, field)
  if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
    raise ConfigError(f'{field}={value!r} must be a {kind.__name__} >= {minimum}')


def within(config: ml_collections.ConfigDict, field: str, low: float, high: float,
           low_in: bool, high_in: bool) -> None:
  """A number in the interval (low, high), each end included where its flag says so."""
  value = get_field(config, field)
  numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
  above = numeric and (value >= low if low_in else value > low)
  below = numeric and (value <= high if high_in else value < high)
  if not (above and below):
    interval = f'{"[" if low_in else "("}{low}, {high}{"]" if high_in else ")"}'
    raise ConfigError(f'{field}={value!r} must lie in {interval}')


def fraction(config: ml_collections.ConfigDict, field: str, upper: float = 1.0,
             closed_low: bool = False) -> None:
  """A number in (0, upper], or [0, upper] with `closed_low`."""
  value = get_field(config, field)
  numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
  low_ok = numeric and (value >= 0 if closed_low else value > 0)
  if not low_ok or value > upper:
    raise ConfigError(f'{field}={value!r} must lie in {"[" if closed_low else "("}0, {upper}]')


def at_most(config: ml_collections.ConfigDict, field: str, other: str) -> None:
  """field <= other, both read from the config."""
  value, bound = get_field(config, field), get_field(config, other)
  if value > bound:
    raise ConfigError(f'{field}={value!r} must be <= {other}={bound!r}')
