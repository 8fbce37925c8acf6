"""Shared fixtures: one TFDS data dir per test session, the digits built into it once."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bnlab import data as data_lib  # pylint: disable=g-import-not-at-top
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
