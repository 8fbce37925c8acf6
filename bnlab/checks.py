"""Config validation before anything compiles: one clear line naming the field and the choices."""

from bnlab import models
from bnlab import optim
from bnlab import space
from bnlab import strategies

METRICS = {'val_accuracy': 'max', 'val_loss': 'min', 'train_loss': 'min'}
ACTIVATIONS = tuple(models.ACTIVATIONS)
BN_EVALS = ('running', 'batch', 'precise')


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
  _check_norm(config)
  _positive(config, 'train.batch_size')
  _positive(config, 'train.epochs')
  for field in optim.HPARAMS:
    if space.get_field(config, f'optimizer.{field}') < 0:
      raise ConfigError(f'optimizer.{field}={config.optimizer[field]!r} must be >= 0')
  if config.optimizer.learning_rate <= 0:
    raise ConfigError(f'optimizer.learning_rate={config.optimizer.learning_rate!r} must be > 0')


def _check_norm(config):
  """model.depth, and the norms that need more than a name: group's divisor, instance's pixels."""
  _positive(config, 'model.depth')
  model = config.model
  if model.norm == 'group':
    _positive(config, 'model.groups')
    if any(w % model.groups for w in model.widths):
      valid = [g for g in range(1, min(model.widths) + 1)
               if all(w % g == 0 for w in model.widths)]
      raise ConfigError(f'model.groups={model.groups!r} must divide every width of '
                        f'model.widths={model.widths!r}; valid: {", ".join(map(str, valid))}')
  if model.norm == 'instance' and model.name == 'mlp':
    # An MLP's features have no pixels: each (example, feature) would be normalized alone.
    raise ConfigError("model.norm='instance' needs images (model.name cnn or resnet): on "
                      "model.name='mlp' every instance is a single value")


def check_sweep(config):
  """Checks the sweep section and parses its space; returns {field: Spec}."""
  _choice(config, 'sweep.strategy', tuple(strategies.PROPOSERS))
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
  return specs
