"""Reading and checking config fields: the one-line errors every layer's checks are made of.

Each check names the field, its value and what it may be, and raises records.ConfigError; the
strategies' and models' own checks, bnlab.prechecks and bnlab.checks are built from these. The
norms' checks of a model section live here too, below both models.NORMS (which holds them) and
bnlab.prechecks (which runs them before JAX is imported).
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


def at_most(config: ml_collections.ConfigDict, field: str, other: str) -> None:
  """field <= other, both read from the config."""
  value, bound = get_field(config, field), get_field(config, other)
  if value > bound:
    raise ConfigError(f'{field}={value!r} must be <= {other}={bound!r}')


def no_norm_check(model_config: ml_collections.ConfigDict) -> None:
  """A norm that any model section can use."""
  del model_config


def norm_groups(model_config: ml_collections.ConfigDict) -> None:
  """Group norm splits every layer's channels into equal groups, so model.groups must divide
  every width, and on a DenseNet the growth rate too (a dense block's layers see width +
  k * growth_rate channels). model.groups >= 1 is checked before, with the other counts."""
  widths, groups = model_config.widths, model_config.groups
  if any(w % groups for w in widths):
    valid = [g for g in range(1, min(widths) + 1) if all(w % g == 0 for w in widths)]
    raise ConfigError(f'model.groups={groups!r} must divide every width of '
                      f'model.widths={widths!r}; valid: {", ".join(map(str, valid))}')
  growth = model_config.growth_rate
  if model_config.name == 'densenet' and growth % groups:
    common = [g for g in range(1, growth + 1)
              if growth % g == 0 and all(w % g == 0 for w in widths)]
    raise ConfigError(f'model.groups={groups!r} must divide model.growth_rate={growth!r} '
                      "(model.name='densenet' adds growth_rate channels per layer); valid: "
                      f'{", ".join(map(str, common))}')


def norm_pixels(model_config: ml_collections.ConfigDict) -> None:
  """Instance norm needs pixels to take statistics over."""
  if model_config.name == 'mlp':
    # An MLP's features have no pixels: each (example, feature) would be normalized alone.
    raise ConfigError("model.norm='instance' needs images (model.name cnn, resnet or "
                      "densenet): on model.name='mlp' every instance is a single value")
