"""The config checks that need neither JAX nor Flax nor TFDS: what launch.py runs first.

A typo in a field (`config.optimizer.lerning_rate`), a name (`--config.sweep.strategy=randm`),
a number (`--config.train.batch_size=0`, `--config.sweep.pbt.quantile=0.9`) or a space spec
(`log_unifrm(1e-4, 1)`) is refused here, after importing only ml_collections and NumPy, not
seconds later behind the imports of the modules that train. bnlab.checks runs every check again,
these included, with the registries themselves, and adds those that read more than one field
of a section or need the code that trains (a norm's own check, a strategy's, a model of the
user's); a config these pass can still be refused there.

The names below are the keys of registries that live next to the code that uses them
(models.MODELS, optim.OPTIMIZERS, strategies.STRATEGIES, ...), which import JAX and Flax.
tests/test_terminal.py checks that each tuple here equals its registry, so neither can drift.
"""

import dataclasses
import math
from typing import NamedTuple

import ml_collections

from bnlab import npz
from bnlab import pareto
from bnlab import records
from bnlab import space
from bnlab import validate

# field: its valid values, in the order of its registry (the error message lists them).
NAMES = {
    'sweep.strategy': ('grid', 'random', 'quasirandom', 'coarse_to_fine', 'halving', 'pbt',
                       'tpe', 'hyperband', 'gp'),
    'sweep.metric': tuple(records.SELECTABLE),
    'sweep.mode': ('max', 'min'),
    'sweep.select': tuple(records.SELECTS),
    'sweep.pruner': ('none', 'median', 'percentile'),
    'sweep.ask': ('batch', 'slot'),
    'model.name': ('mlp', 'cnn', 'resnet', 'densenet'),
    'model.norm': ('batch', 'batch_scratch', 'layer', 'group', 'instance', 'none'),
    'model.activation': ('relu', 'sigmoid', 'tanh'),
    'model.bn_eval': ('running', 'batch', 'precise'),
    'optimizer.name': ('sgd', 'momentum', 'rmsprop', 'adam', 'adamw'),
    'optimizer.schedule': ('constant', 'cosine', 'warmup_cosine'),
    'dataset.scaling': ('standardize', 'minmax', 'minmax_symmetric', 'none'),
}


class Count(NamedTuple):
  """An int >= minimum (a bool is not an int)."""
  minimum: int = 1


class Interval(NamedTuple):
  """A number between low and high, each end included where its flag says so."""
  low: float
  high: float
  low_in: bool
  high_in: bool


# field: the numbers it may take. Every field here is checked wherever a config has it, in a
# strategy's section too when another strategy runs: every default lies within its bounds.
BOUNDS = {
    'seed': Count(0),
    'model.groups': Count(),
    'model.depth': Count(),
    'model.growth_rate': Count(),
    'model.bn_momentum': Interval(0, 1, True, True),
    'model.bn_epsilon': Interval(0, math.inf, True, False),
    'model.init_scale': Interval(0, math.inf, False, False),
    'optimizer.learning_rate': Interval(0, math.inf, False, False),
    'optimizer.b1': Interval(0, 1, True, False),
    'optimizer.b2': Interval(0, 1, True, False),
    'optimizer.eps': Interval(0, math.inf, True, False),
    'optimizer.momentum': Interval(0, 1, True, False),
    'optimizer.decay': Interval(0, 1, True, False),
    'optimizer.weight_decay': Interval(0, math.inf, True, False),
    'optimizer.clip_norm': Interval(0, math.inf, True, False),
    'train.batch_size': Count(),
    'train.epochs': Count(),
    'train.checkpoint_every': Count(0),
    'train.patience': Count(0),
    'dataset.val_fraction': Interval(0, 1, False, False),
    'sweep.num_trials': Count(),
    'sweep.max_parallel': Count(),
    'sweep.seeds': Count(),
    'sweep.pruner_warmup': Count(0),
    'sweep.pruner_percentile': Interval(0, 100, False, False),
    'sweep.coarse_to_fine.rounds': Count(),
    'sweep.coarse_to_fine.top_fraction': Interval(0, 1.0, False, True),
    'sweep.halving.eta': Count(2),
    'sweep.halving.min_epochs': Count(),
    'sweep.hyperband.eta': Count(2),
    'sweep.hyperband.min_epochs': Count(),
    'sweep.pbt.interval': Count(),
    'sweep.pbt.quantile': Interval(0, 0.5, False, True),
    'sweep.pbt.resample': Interval(0, 1.0, True, True),
    'sweep.tpe.batch_size': Count(),
    'sweep.gp.batch_size': Count(),
}


def check_numbers(config: ml_collections.ConfigDict) -> None:
  """Each field of BOUNDS that `config` has lies within its bounds, and model.widths is a
  non-empty tuple of positive ints."""
  for field, bound in BOUNDS.items():
    if not validate.has_field(config, field):
      continue
    if isinstance(bound, Count):
      validate.positive(config, field, bound.minimum)
    else:
      validate.within(config, field, *bound)
  if not validate.has_field(config, 'model.widths'):
    return
  widths = config.model.widths
  if not isinstance(widths, tuple) or not widths or not all(
      isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
    raise records.ConfigError(f'model.widths={widths!r} must be a non-empty tuple of positive '
                              'ints')


# model.norm: its check of the model section, as models.NORMS holds it (a test ties the two).
NORM_CHECKS = {'group': validate.norm_groups, 'instance': validate.norm_pixels}
MODEL_FIELDS = ('name', 'norm', 'widths', 'groups', 'growth_rate')  # What those checks read.


def check_norm(config: ml_collections.ConfigDict) -> None:
  """The model section suits model.norm: group's divisor, instance's pixels."""
  if all(validate.has_field(config, f'model.{field}') for field in MODEL_FIELDS):
    NORM_CHECKS.get(config.model.norm, validate.no_norm_check)(config.model)


def check_fields(config: ml_collections.ConfigDict) -> None:
  """Refuses a field or section that configs/default.py does not define: a typo in a config
  file (`config.optimizer.lerning_rate = 0.1`) would otherwise add a field nothing reads.
  sweep.space is left to the space checks, which check that each spec names a config field."""
  from configs import default  # pylint: disable=import-outside-toplevel
  known = default.get_config()
  for field, value in space.flat_fields(config).items():
    if field.startswith(('sweep.space.', 'model.kwargs.')):  # kwargs: models.check_custom's.
      continue
    if field in records.RENAMED:
      raise records.ConfigError(records.renamed_message(field))
    node, parts = known, field.split('.')
    for depth, part in enumerate(parts):
      if not hasattr(node, 'items') or part not in node:
        where = '.'.join(parts[:depth]) or 'the config'
        valid = ', '.join(sorted(node)) if hasattr(node, 'items') else 'none: it is a field'
        raise records.ConfigError(f'{".".join(parts[:depth + 1])}: configs/default.py defines '
                                  f'no such field; {where} has: {valid}')
      node = node[part]
    _same_type(field, value, node)


def _same_type(field, value, default):
  """A field's value has the type of configs/default.py's (an int may stand for a float; a bool
  is not an int: `train.epochs=True` would train one epoch)."""
  ok = isinstance(value, type(default)) and isinstance(value, bool) == isinstance(default, bool)
  if not ok and not (isinstance(default, float) and isinstance(value, int)
                     and not isinstance(value, bool)):
    raise records.ConfigError(f'{field}={value!r} must be a {type(default).__name__} like '
                              f'configs/default.py\'s {default!r}')


OFFLINE_DATASETS = ('digits', 'fashion_mnist')
DATASETS = (f'one of {", ".join(OFFLINE_DATASETS)} (offline) or a TFDS image-classification '
            f'name such as mnist, cifar10, or {npz.PREFIX}PATH (your own arrays)')


def check_dataset_name(config: ml_collections.ConfigDict) -> None:
  """dataset.name is bnlab's offline one, npz:PATH (bnlab.checks reads the file), or a name in
  TFDS's registry: TFDS is imported for that alone (~0.5 s), neither JAX nor TensorFlow."""
  name = config.dataset.name
  if not isinstance(name, str) or not name:
    raise records.ConfigError(f'dataset.name={name!r} must be {DATASETS}')
  if name in OFFLINE_DATASETS or name.startswith(npz.PREFIX):
    return
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  try:  # Looks the name up in TFDS's registry without importing TensorFlow or downloading.
    tfds.builder_cls(name.split(':')[0].split('/')[0])
  except (tfds.core.registered.DatasetNotFoundError, ValueError):  # ValueError: not a name at all.
    raise records.ConfigError(f'dataset.name={name!r} is not a known dataset; use {DATASETS}'
                              ) from None


def _custom(field: str, value) -> bool:
  """A model of the user's own (`PACKAGE.MODULE:ATTR`): bnlab.checks imports and checks it."""
  return field == 'model.name' and isinstance(value, str) and ':' in value


def check_names(config: ml_collections.ConfigDict) -> None:
  """Each named field's value is one of its valid names (fields a config lacks are left to
  bnlab.checks, which says what is missing)."""
  for field, valid in NAMES.items():
    if validate.has_field(config, field) and not _custom(field, validate.get_field(config, field)):
      validate.choice(config, field, valid)


def bind_conditions(specs: dict[str, space.Spec],
                    config: ml_collections.ConfigDict) -> dict[str, space.Spec]:
  """`specs` with each condition's base value read from `config` (what a condition reads where
  its field is not swept, or is inactive). Raises SpecError naming the field for a condition on
  a field the config lacks, a circular one, or one its field's swept choices never meet."""
  out = {field: _bound(field, spec, specs, config) for field, spec in specs.items()}
  space.condition_order(out)  # Refuses circular conditions.
  return out


def _bound(field, spec, specs, config):
  cond = spec.condition
  if cond is None:
    return spec
  where = f'sweep.space.{field}: its condition `if {cond.text}`'
  if not validate.has_field(config, cond.field):
    raise space.SpecError(f'{where} reads {cond.field}, which is not a config field; condition '
                          'on a field that configs/default.py defines')
  parent = specs.get(cond.field)
  if (parent and not parent.is_numeric and parent.condition is None
      and not any(v in parent.args for v in cond.values)):
    raise space.SpecError(f'{where} never holds: sweep.space.{cond.field} gives only '
                          + ', '.join(map(repr, parent.args)))
  base = validate.get_field(config, cond.field)
  return dataclasses.replace(spec, condition=dataclasses.replace(cond, base=base, bound=True))


def check_space_names(config: ml_collections.ConfigDict) -> None:
  """Each spec of sweep.space parses, its condition reads a config field, and each choice of a
  named field (and each value a condition compares a named field with) is a valid name."""
  try:
    specs = bind_conditions(space.parse_space(config.sweep.space), config)
  except space.SpecError as e:
    raise records.ConfigError(str(e)) from None
  texts = space.flatten(config.sweep.space)
  for field, spec in specs.items():
    cond = spec.condition
    for value in cond.values if cond and cond.field in NAMES else ():
      if value not in NAMES[cond.field] and not _custom(cond.field, value):
        raise records.ConfigError(
            f'sweep.space.{field}={texts[field]!r}: its condition compares {cond.field} with '
            f'{value!r}, which is not one of: {", ".join(NAMES[cond.field])}')
    if field not in NAMES or spec.is_numeric:
      continue
    for value in spec.args:
      if isinstance(value, bool) or (value not in NAMES[field] and not _custom(field, value)):
        # bnlab.checks words it so, through its check of every value a spec can give.
        raise records.ConfigError(
            f'sweep.space.{field}={texts[field]!r} can give an invalid trial: {field}={value!r} '
            f'is not one of: {", ".join(NAMES[field])}')


def check_config(config: ml_collections.ConfigDict) -> None:
  """The checks of fields, names, numbers and specs, before anything heavy is imported; raises
  ConfigError."""
  check_fields(config)
  check_names(config)
  check_numbers(config)
  check_norm(config)
  if validate.has_field(config, 'sweep.strategy') and 'space' in config.sweep:
    check_space_names(config)
  if validate.has_field(config, 'sweep.objectives'):
    pareto.parse(config.sweep.objectives)
  if validate.has_field(config, 'dataset.name'):
    check_dataset_name(config)
