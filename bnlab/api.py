"""bnlab from Python (a notebook, a script): run a sweep, get its results and figures back.

    from bnlab import api
    results = api.run('configs/sweep.py', 'runs/nb', {'sweep.num_trials': 16})  # a DataFrame
    api.figures('runs/nb')  # {file name: image}: the report's figures, shown inline

The same checks as `launch.py`, in the same order and with the same one-line messages, raised
as `ValueError` (records.ConfigError) instead of exiting; then `bnlab.sweep.run`. A rerun on the
same workdir resumes it, or returns the finished results as they are.
"""

import importlib.util
import io
import os
from typing import Any, Mapping, TYPE_CHECKING

import ml_collections

from bnlab import checks
from bnlab import errors
from bnlab import files
from bnlab import integrity
from bnlab import sweep
from bnlab.reporting import pages
from bnlab.reporting import sweepfiles

if TYPE_CHECKING:  # pandas is imported where results are read, not by every import of bnlab.
  import pandas

ConfigError = checks.ConfigError
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # The repository's root.
ConfigLike = ml_collections.ConfigDict | str | os.PathLike | None


def load_config(config: ConfigLike = None) -> ml_collections.ConfigDict:
  """A copy of `config`; a path loads the config file's get_config() (relative to the working
  directory, else to the repository's root, so a notebook in notebooks/ can name
  'configs/sweep.py'); None loads configs/default.py."""
  if isinstance(config, ml_collections.ConfigDict):
    return config.copy_and_resolve_references()
  path = os.fspath(config) if config is not None else os.path.join('configs', 'default.py')
  if not os.path.exists(path) and os.path.exists(os.path.join(ROOT, path)):
    path = os.path.join(ROOT, path)
  if not os.path.isfile(path):
    raise ConfigError(f'config: cannot load the config file: {path} is not a file')
  try:
    spec = importlib.util.spec_from_file_location(
        '_bnlab_config_' + os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()
  except Exception as e:  # pylint: disable=broad-except  # The config file may raise anything.
    problem = errors.config_file_problem(e, path) or f'{type(e).__name__}: {e}'
    raise ConfigError(f'config: cannot load the config file: {problem}') from None


def with_overrides(config: ml_collections.ConfigDict,
                   overrides: Mapping[str, Any] | None) -> ml_collections.ConfigDict:
  """A copy of `config` with {dotted field: value} set, as --config.FIELD=VALUE would set it:
  a field the config lacks or a value of another type is a ConfigError naming the field. Only
  model.kwargs takes new keys (the keyword arguments of a model of the user's)."""
  config = config.copy_and_resolve_references()
  for field, value in (overrides or {}).items():
    section, _, key = field.rpartition('.')
    node, parts = config, section.split('.') if section else []
    for part in parts:
      if not hasattr(node, 'items') or part not in node:
        raise ConfigError(f'{field}: the config has no field {part!r}')
      node = node[part]
    if not hasattr(node, 'items') or (key not in node and section != 'model.kwargs'):
      raise ConfigError(f'{field}: the config has no field {key!r}')
    try:
      node[key] = value
    except TypeError:  # ml_collections refuses a value of another type than the field's.
      raise ConfigError(f'{field}={value!r}: must be a {type(node[key]).__name__}') from None
  return config


def check(config: ml_collections.ConfigDict, workdir: str, overwrite: bool = False) -> None:
  """launch.py's checks of a config and its workdir, before any data or compile: a ConfigError
  (a ValueError) with launch.py's one line."""
  if not files.supported(workdir):
    raise ConfigError(f'workdir={workdir}: unsupported location; valid: a local folder or '
                      'gs://BUCKET/PATH')
  problem = errors.local_workdir_problem(workdir) if files.is_local(workdir) else ''
  if problem and (overwrite or not integrity.completion(workdir).finished):
    raise ConfigError(f'workdir={workdir}: {problem}')
  missing = files.missing_packages(workdir)
  if missing:
    raise ConfigError(f'workdir={workdir} needs packages that are not installed: '
                      f'pip install {" ".join(missing)}')
  checks.check_config(config)
  if not overwrite:
    checks.check_workdir(config, workdir)


def run(config: ConfigLike, workdir: str, overrides: Mapping[str, Any] | None = None,
        overwrite: bool = False) -> 'pandas.DataFrame':
  """Runs the sweep of `config` (a ConfigDict, a config file's path, or None for
  configs/default.py) with `overrides` ({'optimizer.learning_rate': 1e-3,
  'sweep.space.optimizer.b1': 'one_minus_log_uniform(0.8, 0.99)'}) into `workdir`.

  Returns results.csv as a DataFrame, one row per trial. Raises ValueError (ConfigError) with
  launch.py's one-line message for a bad field, value or workdir, before anything compiles. An
  interrupted run on `workdir` resumes; a finished one is returned as it is; `overwrite` starts
  afresh.
  """
  config = with_overrides(load_config(config), overrides)
  workdir = os.fspath(workdir)
  check(config, workdir, overwrite)
  sweep.run(config, workdir, overwrite=overwrite)
  return results(workdir)


def results(workdir: str) -> 'pandas.DataFrame':
  """The workdir's results.csv as a DataFrame."""
  import pandas as pd  # pylint: disable=import-outside-toplevel  # Only the API's users pay.
  text = files.read_text(os.path.join(workdir, sweepfiles.RESULTS_FILE))
  return pd.read_csv(io.StringIO(text))


def figures(workdir: str) -> dict[str, Any]:
  """The report's figures of `workdir`, {file name: image}, in the report's order.

  Each image is an `IPython.display.Image` where IPython is installed (a notebook shows it
  inline: `display(*api.figures(w).values())`), else the PNG's bytes.
  """
  images = {name: data for name, _, data in pages.make_page(sweepfiles.load(workdir)).images}
  try:
    from IPython import display  # pylint: disable=import-outside-toplevel  # Optional.
  except ImportError:
    return images
  return {name: display.Image(data=data, format='png') for name, data in images.items()}
