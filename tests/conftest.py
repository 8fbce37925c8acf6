"""Shared fixtures: one TFDS data dir per test session, the digits built into it once.

Every test runs on one CPU device, in this process and in the launch.py processes it compares
against (launch.py would otherwise make a device per core, and Adam turns the float-level
differences between programs of other member counts into visible ones). tests/test_parallel.py
runs more devices, and checks launch.py's default of one per core.
"""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ['JAX_NUM_CPU_DEVICES'] = '1'  # Before JAX's import; inherited by the subprocesses.

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from bnlab import data as data_lib  # pylint: disable=g-import-not-at-top
from bnlab import population as population_lib  # pylint: disable=g-import-not-at-top
from bnlab import programs  # pylint: disable=g-import-not-at-top
from configs import test as test_config  # pylint: disable=g-import-not-at-top


@pytest.fixture(autouse=True)
def kept_programs():
  """Every test starts with bnlab.executables as sweep.run leaves it: programs kept in the
  compilation cache's folder, whatever an earlier test of this process set."""
  programs.enable_compilation_cache(jax_cache=False)


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


@pytest.fixture
def config(data_dir):
  """configs/test.py pointed at the session's data dir."""
  config = test_config.get_config()
  config.dataset.data_dir = data_dir
  return config


@pytest.fixture
def digits(config):
  return data_lib.load(config.dataset)


def create_population(configs, trials, data, num_classes, seed=0, **kwargs):
  """A Population of `configs` (trials `trials`) with empty settings."""
  return population_lib.Population.create(configs, [{}] * len(configs), trials, data,
                                          num_classes, seed, **kwargs)


def train_trials(configs, trials, data, num_classes, seed, max_parallel):
  """population.train_trials of `configs` with empty settings: one TrialRecord each."""
  return population_lib.train_trials(configs, [{}] * len(configs), trials, data, num_classes,
                                     seed, max_parallel)


def train_population(configs, digits, epochs=1):
  """A population of `configs` trained `epochs` epochs on digits; (population, last metrics)."""
  data, num_classes = digits
  population = create_population(configs, list(range(len(configs))), data, num_classes)
  for _ in range(epochs):
    metrics = population.run_epoch(data)
  return population, metrics


def member(tree, k):
  """Member k of a stacked tree, as host arrays."""
  return jax.tree.map(lambda a: np.asarray(a[k]), tree)
