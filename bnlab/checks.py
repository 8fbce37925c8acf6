"""Config validation before anything compiles: one clear line naming the field and the choices."""

import json
import os

import ml_collections

from bnlab import data as data_lib
from bnlab import files
from bnlab import models
from bnlab import npz
from bnlab import optim
from bnlab import pareto
from bnlab import prechecks
from bnlab import records
from bnlab import space
from bnlab import strategies
from bnlab.strategies import asked
from bnlab.strategies import pruning
from bnlab import validate

ConfigError = records.ConfigError
METRICS = records.SELECTABLE
ACTIVATIONS = tuple(models.ACTIVATIONS)
BN_EVALS = ('running', 'batch', 'precise')
_choice = validate.choice
check_fields = prechecks.check_fields  # Needs no JAX: launch.py runs it before their import.


def check_trial(config: ml_collections.ConfigDict) -> None:
  """Checks one (trial) config's model, optimizer and train sections."""
  if models.is_custom(config.model.name):  # PACKAGE.MODULE:ATTR: the only name that imports.
    models.check_custom(config.model)
  else:
    _choice(config, 'model.name', models.MODELS)
  _choice(config, 'model.norm', models.NORMS)
  _choice(config, 'model.activation', ACTIVATIONS)
  _choice(config, 'model.bn_eval', BN_EVALS)
  _choice(config, 'optimizer.name', optim.OPTIMIZERS)
  _choice(config, 'optimizer.schedule', optim.SCHEDULES)
  prechecks.check_numbers(config)  # The counts and intervals of every section, widths.
  models.check_norm(config.model)  # Each norm's own check: group's divisor, instance's pixels.
  if not isinstance(config.train.keep_checkpoints, bool):
    raise ConfigError(f'train.keep_checkpoints={config.train.keep_checkpoints!r} must be True or '
                      'False')


def check_sweep(config: ml_collections.ConfigDict) -> dict[str, space.Spec]:
  """Checks the sweep section and parses its space; returns {field: Spec}."""
  _choice(config, 'sweep.strategy', strategies.STRATEGIES)
  _choice(config, 'sweep.metric', tuple(METRICS))
  _choice(config, 'sweep.mode', ('max', 'min'))
  _choice(config, 'sweep.select', records.SELECTS)
  try:
    specs = prechecks.bind_conditions(space.parse_space(config.sweep.space), config)
  except space.SpecError as e:
    raise ConfigError(str(e)) from None
  for field, spec in specs.items():
    if not validate.has_field(config, field):
      raise ConfigError(f'sweep.space.{field}: the config has no field {field}; sweep a field '
                        'that configs/default.py defines')
    current = validate.get_field(config, field)
    if spec.is_numeric and not isinstance(current, (int, float)):
      raise ConfigError(f'sweep.space.{field}: {spec.kind} is numeric but {field} is '
                        f'{type(current).__name__}; use choice(...)')
  check_strategy(config, specs)
  return specs


def check_dataset(config: ml_collections.ConfigDict) -> None:
  """The dataset name must be one of bnlab's offline builders, a registered TFDS builder or
  npz:PATH of a readable, well-formed .npz; the scaling one bnlab.data knows."""
  _choice(config, 'dataset.scaling', data_lib.SCALINGS)
  prechecks.check_dataset_name(config)
  name = config.dataset.name
  if name.startswith(npz.PREFIX):
    npz.read(name[len(npz.PREFIX):])  # Keys, lengths and labels, before anything compiles.


def check_space_values(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None:
  """Every value a spec can give (each choice, both ends of a range) must make a valid trial."""
  texts = space.flatten(config.sweep.space)
  for field, spec in specs.items():
    where = f'sweep.space.{field}={texts[field]!r}'
    values = (spec.value(0), spec.value(1)) if spec.is_numeric else spec.args
    for value in values:
      try:
        check_trial(space.with_overrides(config, {field: value}))
      except TypeError:
        current = validate.get_field(config, field)
        raise ConfigError(f'{where}: {value!r} is not a {type(current).__name__} like '
                          f'{field}={current!r}') from None
      except ConfigError as e:
        raise ConfigError(f'{where} can give an invalid trial: {e}') from None


def check_config(config: ml_collections.ConfigDict) -> dict[str, space.Spec]:
  """Every check that needs no data, cheapest first; returns the parsed space {field: Spec}."""
  check_fields(config)
  prechecks.check_numbers(config)  # Before the checks that divide by or count with them.
  specs = check_sweep(config)
  check_trial(config)
  check_dataset(config)
  check_space_values(config, specs)
  check_custom_model(config, specs)
  return specs


def check_custom_model(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None:
  """model.kwargs is for a model of the user's (PACKAGE.MODULE:ATTR), and a swept model field
  must be one that model declares: a sweep of a field it never reads would train N equal models."""
  name = config.model.name
  if 'model.name' in specs:  # check_space_values checked each; the others read other fields.
    return
  if not models.is_custom(name):
    if config.model.get('kwargs'):
      raise ConfigError(f'model.kwargs is only for model.name=PACKAGE.MODULE:ATTR, not '
                        f'model.name={name!r}')
    return
  declared = set(models.module_fields(models.custom_class(name)))
  used = {'name', 'bn_eval'} | (declared & set(models.DYNAMIC_FIELDS))
  for field in specs:
    section, _, key = field.partition('.')
    if section == 'model' and key not in used:
      raise ConfigError(
          f'sweep.space.{field}: model.name={name!r} gets only num_classes, model.kwargs and '
          f'those of {", ".join(models.DYNAMIC_FIELDS)} it declares, so {field} would change '
          'nothing')


def check_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses a workdir that holds a sweep of another config, naming the first differing field."""
  path = os.path.join(workdir, 'config.json')
  if not files.exists(path):
    return
  try:
    old = space.flat_fields(json.loads(files.read_text(path)))
  except (OSError, ValueError) as e:
    raise ConfigError(
        f'workdir {workdir}: cannot read its config.json ({e}); if you know the config it ran, '
        'delete config.json and rerun that config: its finished trials and checkpoints are '
        'reused (their names hash each trial\'s config; another config\'s never match)') from None
  new = space.flat_fields(json.loads(config.to_json_best_effort()))
  missing = '<absent>'
  old = {**{f: v for f, v in records.ADDED_FIELDS.items() if f in new}, **old}
  for field in list(new) + [f for f in old if f not in new]:
    if field not in records.RESULT_NEUTRAL and old.get(field, missing) != new.get(field, missing):
      raise ConfigError(
          f'workdir {workdir} holds a sweep of another config: {field} was '
          f'{old.get(field, missing)!r}, now {new.get(field, missing)!r}; rerun with '
          '--overwrite to start afresh, or choose another --workdir')


def check_strategy(config: ml_collections.ConfigDict, specs: dict[str, space.Spec]) -> None:
  """The strategy's own section (its module's check), and whether the space gives it something
  to search."""
  strategy = config.sweep.strategy
  if strategy in strategies.SEARCHING and not specs:
    raise ConfigError(f'sweep.space is empty: sweep.strategy={strategy!r} has nothing to search')
  strategies.STRATEGIES[strategy].check(config, specs)
  pruning.check(config)
  asked.check(config, specs)
  check_objectives(config)


def check_objectives(config: ml_collections.ConfigDict) -> None:
  """sweep.objectives: known metrics, the first the sweep metric, on a strategy that keeps the
  whole front (no pruner, no slot asks: both stop trials by one metric)."""
  sweep = config.sweep
  objectives = pareto.parse(sweep.objectives)
  if not objectives:
    return
  first = objectives[0]
  field = f'sweep.objectives={sweep.objectives!r}'
  if (first.metric, first.mode) != (sweep.metric, sweep.mode):
    raise ConfigError(f'{field}: the first objective is the sweep metric, here '
                      f'{sweep.metric}:{sweep.mode}; set --config.sweep.metric={first.metric} '
                      f'--config.sweep.mode={first.mode}, or put {sweep.metric}:{sweep.mode} first')
  if sweep.strategy not in strategies.PARETO:
    raise ConfigError(f'{field}: sweep.strategy={sweep.strategy!r} ranks by one metric; a '
                      f'Pareto front works with {", ".join(strategies.PARETO)}')
  for name, off in (('sweep.pruner', 'none'), ('sweep.ask', 'batch')):
    if validate.get_field(config, name) != off:
      raise ConfigError(f'{field}: {name}={validate.get_field(config, name)!r} stops trials by '
                        f'sweep.metric alone and would cut the front; set {name}={off!r}')
