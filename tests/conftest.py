"""Shared fixtures: one TFDS data dir per test session, the digits built into it once."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from bnlab import data as data_lib  # pylint: disable=g-import-not-at-top
from bnlab import engine  # pylint: disable=g-import-not-at-top
from configs import test as test_config  # pylint: disable=g-import-not-at-top


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


def train_population(configs, digits, epochs=1):
  """A population of `configs` trained `epochs` epochs on digits; (population, last metrics)."""
  data, num_classes = digits
  population = engine.Population.create(configs, list(range(len(configs))), data, num_classes,
                                        seed=0)
  for _ in range(epochs):
    metrics = population.run_epoch(data)
  return population, metrics


def member(tree, k):
  """Member k of a stacked tree, as host arrays."""
  return jax.tree.map(lambda a: np.asarray(a[k]), tree)
