"""bnlab.api: a sweep from Python returns results.csv as a DataFrame and the report's figures;
bad overrides, config files and workdirs raise a ValueError with launch.py's one line."""

import os

import pandas as pd
import pytest

from bnlab import api
from configs import test as test_config

PNG = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def api_run(tmp_path_factory, data_dir):
  """(workdir, DataFrame) of one 2-trial, 1-epoch digits sweep run through the API."""
  workdir = str(tmp_path_factory.mktemp('api'))
  frame = api.run('configs/test.py', workdir, {
      'dataset.data_dir': data_dir, 'sweep.num_trials': 2, 'train.epochs': 1,
      'sweep.space.model.widths': '', 'model.widths': (8,),
      'sweep.space.optimizer.learning_rate': 'log_uniform(1e-2, 1e-1)'})
  return workdir, frame


def test_run_returns_results_csv_as_a_data_frame(api_run):
  workdir, frame = api_run
  pd.testing.assert_frame_equal(frame, pd.read_csv(os.path.join(workdir, 'results.csv')))
  assert list(frame['trial']) == [0, 1] and set(frame['status']) == {'ok'}
  assert frame['optimizer.learning_rate'].between(1e-2, 1e-1).all()
  assert 'model.widths' not in frame  # Cleared by the override: not swept.


def test_a_second_run_on_a_finished_workdir_returns_the_same_results(api_run, data_dir):
  workdir, frame = api_run
  again = api.run('configs/test.py', workdir, {
      'dataset.data_dir': data_dir, 'sweep.num_trials': 2, 'train.epochs': 1,
      'sweep.space.model.widths': '', 'model.widths': (8,),
      'sweep.space.optimizer.learning_rate': 'log_uniform(1e-2, 1e-1)'})
  pd.testing.assert_frame_equal(again, frame)


def test_figures_are_the_reports_pngs(api_run):
  workdir, _ = api_run
  images = api.figures(workdir)
  assert 'curves.png' in images
  for name, image in images.items():
    data = getattr(image, 'data', image)  # IPython's Image where IPython is installed.
    assert data.startswith(PNG), name
    with open(os.path.join(workdir, 'plots', name), 'rb') as f:
      assert f.read() == data, name


def test_a_config_dict_with_overrides_is_not_changed(data_dir):
  config = test_config.get_config()
  changed = api.with_overrides(config, {'optimizer.learning_rate': 1e-2,
                                        'model.kwargs.hidden': 8})
  assert changed.optimizer.learning_rate == 1e-2 and changed.model.kwargs.hidden == 8
  assert config.optimizer.learning_rate == 1e-3 and 'hidden' not in config.model.kwargs
  assert api.load_config(None).sweep.num_trials == 1  # configs/default.py


@pytest.mark.parametrize('overrides,message', [
    ({'optimizer.lerning_rate': 0.1}, "optimizer.lerning_rate: the config has no field "
                                      "'lerning_rate'"),
    ({'optimiser.learning_rate': 0.1}, "optimiser.learning_rate: the config has no field "
                                       "'optimiser'"),
    ({'optimizer.learning_rate.x': 0.1}, "optimizer.learning_rate.x: the config has no field "
                                         "'x'"),
    ({'optimizer.learning_rate': 'fast'}, "optimizer.learning_rate='fast': must be a float"),
    ({'optimizer.name': 'adamx'}, "optimizer.name='adamx' is not one of: sgd, momentum, rmsprop, "
                                  'adam, adamw'),
    ({'sweep.space.optimizer.learning_rate': 'log_uniform(0.1)'}, 'sweep.space.optimizer.'
                                                                  'learning_rate'),
    ({'sweep.strategy': 'bayes'}, "sweep.strategy='bayes' is not one of: grid, random"),
])
def test_a_bad_override_is_a_value_error_naming_the_field(tmp_path, overrides, message):
  with pytest.raises(ValueError) as error:
    api.run('configs/test.py', str(tmp_path / 'run'), overrides)
  assert str(error.value).startswith(message), str(error.value)
  assert len(str(error.value).splitlines()) == 1
  assert not os.path.exists(tmp_path / 'run')


def test_a_bad_config_file_or_workdir_is_a_value_error(tmp_path):
  with pytest.raises(ValueError, match=r'^config: cannot load the config file: .*nope\.py is '
                                       r'not a file$'):
    api.run(str(tmp_path / 'nope.py'), str(tmp_path / 'run'))
  broken = tmp_path / 'broken.py'
  broken.write_text('def get_config():\n  return 1 / 0\n')
  with pytest.raises(ValueError, match=r'broken\.py:2: ZeroDivisionError'):
    api.run(str(broken), str(tmp_path / 'run'))
  with pytest.raises(ValueError, match=r'^workdir=s3://b/x: unsupported location'):
    api.run(None, 's3://b/x')
