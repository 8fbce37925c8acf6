"""Config validation before anything compiles: one clear line naming the field and the choices."""

from bnlab import models
from bnlab import optim
from bnlab import space
from bnlab import strategies

METRICS = {'val_accuracy': 'max', 'val_loss': 'min', 'train_loss': 'min'}
ACTIVATIONS = tuple(models.ACTIVATIONS)
BN_EVALS = ('running',)


class ConfigError(ValueError):
  """A user error in the config: the message is one line for the terminal."""


def _choice(config, field, valid):
  value = space.get_field(config, field)
  if value not in valid:
    raise ConfigError(f'{field}={value!r} is not one of: {", ".join(map(str, valid))}')


def _positive(config, field, minimum=1, kind=int):
  value = space.get_field(config, field)
  if not isinstance(value, kind) or value < minimum:
    raise ConfigError(f'{field}={value!r} must be a {kind.__name__} >= {minimum}')


def check_trial(config):
  """Checks one (trial) config's model, optimizer and train sections."""
  _choice(config, 'model.name', models.MODELS)
  _choice(config, 'model.norm', models.NORMS)
  _choice(config, 'model.activation', ACTIVATIONS)
  _choice(config, 'model.bn_eval', BN_EVALS)
  _choice(config, 'optimizer.name', optim.OPTIMIZERS)
  _choice(config, 'optimizer.schedule', optim.SCHEDULES)
  widths = config.model.widths
  if not isinstance(widths, tuple) or not widths or not all(
      isinstance(w, int) and w > 0 for w in widths):
    raise ConfigError(f'model.widths={widths!r} must be a non-empty tuple of positive ints')
  _positive(config, 'train.batch_size')
  _positive(config, 'train.epochs')
  for field in optim.HPARAMS:
    if space.get_field(config, f'optimizer.{field}') < 0:
      raise ConfigError(f'optimizer.{field}={config.optimizer[field]!r} must be >= 0')
  if config.optimizer.learning_rate <= 0:
    raise ConfigError(f'optimizer.learning_rate={config.optimizer.learning_rate!r} must be > 0')


def check_sweep(config):
  """Checks the sweep section and parses its space; returns {field: Spec}."""
  _choice(config, 'sweep.strategy', strategies.STRATEGIES)
  _choice(config, 'sweep.metric', tuple(METRICS))
  _choice(config, 'sweep.mode', ('max', 'min'))
  _positive(config, 'sweep.num_trials')
  _positive(config, 'sweep.max_parallel')
  if not 0 < config.dataset.val_fraction < 1:
    raise ConfigError(f'dataset.val_fraction={config.dataset.val_fraction!r} must lie in (0, 1)')
  try:
    specs = space.parse_space(config.sweep.space)
    if config.sweep.strategy == 'grid':
      space.grid_trials(specs)  # Raises on a spec that is not grid(...).
  except space.SpecError as e:
    raise ConfigError(str(e)) from None
  for field, spec in specs.items():
    current = space.get_field(config, field)
    if spec.is_numeric and not isinstance(current, (int, float)):
      raise ConfigError(f'sweep.space.{field}: {spec.kind} is numeric but {field} is '
                        f'{type(current).__name__}; use choice(...)')
  check_strategy(config, specs)
  return specs


def _fraction(config, field, upper=1.0, closed_low=False):
  value = space.get_field(config, field)
  low_ok = value >= 0 if closed_low else value > 0
  if not isinstance(value, (int, float)) or not low_ok or value > upper:
    raise ConfigError(f'{field}={value!r} must lie in {"[" if closed_low else "("}0, {upper}]')


def check_strategy(config, specs):
  """The strategy's own fields, and whether the space gives it something to search."""
  strategy = config.sweep.strategy
  _positive(config, 'sweep.seeds')
  if strategy in strategies.SEARCHING and not specs:
    raise ConfigError(f'sweep.space is empty: sweep.strategy={strategy!r} has nothing to search')
  if strategy == 'coarse_to_fine':
    _positive(config, 'sweep.rounds')
    _fraction(config, 'sweep.top_fraction')
  if strategy == 'halving':
    _positive(config, 'sweep.eta', minimum=2)
    _positive(config, 'sweep.min_epochs')
    if config.sweep.min_epochs > config.train.epochs:
      raise ConfigError(f'sweep.min_epochs={config.sweep.min_epochs!r} must be <= '
                        f'train.epochs={config.train.epochs!r}')
  if strategy == 'pbt':
    _positive(config, 'sweep.pbt_interval')
    _fraction(config, 'sweep.pbt_quantile', upper=0.5)
    _fraction(config, 'sweep.pbt_resample', closed_low=True)
    if not any(f in strategies.pbt.EXPLORED for f in specs):
      raise ConfigError('sweep.space: sweep.strategy=\'pbt\' needs a swept dynamic '
                        'hyperparameter, one of: ' + ', '.join(strategies.pbt.EXPLORED))
  if strategy in ('halving', 'pbt') and config.sweep.seeds != 1:
    raise ConfigError(f'sweep.seeds={config.sweep.seeds!r}: sweep.strategy={strategy!r} '
                      'takes seeds=1')
  if strategy == 'tpe':
    _positive(config, 'sweep.batch_size')
    for field, spec in specs.items():
      if spec.kind == 'grid':
        raise ConfigError(f'sweep.space.{field}={spec.kind}(...): sweep.strategy=\'tpe\' '
                          'takes no grid specs; use choice(...)')
  for field, spec in specs.items():  # Every value a later round may draw passes check_trial.
    for u in (0.0, 1.0):
      try:
        check_trial(space.with_overrides(config, {field: spec.value(u)}))
      except TypeError as e:
        raise ConfigError(f'sweep.space.{field}: {e}') from None
