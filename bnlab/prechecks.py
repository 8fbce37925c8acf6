"""The config checks that need neither JAX nor Flax nor TFDS: what launch.py runs first.

A typo in a name (`--config.sweep.strategy=randm`, `--config.model.norm=btach`) or in a space
spec (`log_unifrm(1e-4, 1)`) is refused here, after importing only ml_collections and NumPy, not
seconds later behind the imports of the modules that train. bnlab.checks runs every check again,
these included, with the registries themselves; a config these pass can still be refused there.

The names below are the keys of registries that live next to the code that uses them
(models.MODELS, optim.OPTIMIZERS, strategies.STRATEGIES, ...), which import JAX and Flax.
tests/test_terminal.py checks that each tuple here equals its registry, so neither can drift.
"""

import dataclasses

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
    'model.name': ('mlp', 'cnn', 'resnet', 'densenet'),
    'model.norm': ('batch', 'batch_scratch', 'layer', 'group', 'instance', 'none'),
    'model.activation': ('relu', 'sigmoid', 'tanh'),
    'model.bn_eval': ('running', 'batch', 'precise'),
    'optimizer.name': ('sgd', 'momentum', 'rmsprop', 'adam', 'adamw'),
    'optimizer.schedule': ('constant', 'cosine', 'warmup_cosine'),
    'dataset.scaling': ('standardize', 'minmax', 'minmax_symmetric', 'none'),
}


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
  """The checks of names and specs, before anything heavy is imported; raises ConfigError."""
  check_names(config)
  if validate.has_field(config, 'sweep.strategy') and 'space' in config.sweep:
    check_space_names(config)
  if validate.has_field(config, 'sweep.objectives'):
    pareto.parse(config.sweep.objectives)
  if validate.has_field(config, 'dataset.name'):
    check_dataset_name(config)
