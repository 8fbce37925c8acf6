"""A workdir written before a config field existed still resumes after the upgrade: its config
matches and its checkpoints and journalled trials keep their names (records.ADDED_FIELDS)."""

import os

import ml_collections
import pytest

from bnlab import checks
from bnlab import checkpoint
from bnlab import records
from bnlab import space


def before_the_added_fields(config):
  """The config as a workdir from before every added field (and model.kwargs) stored it."""
  tree = config.to_dict()
  for field in records.ADDED_FIELDS:
    *sections, key = field.split('.')
    node = tree
    for section in sections:
      node = node[section]
    del node[key]
  del tree['sweep']['gp'], tree['model']['kwargs']
  return ml_collections.ConfigDict(tree)


def test_every_added_field_is_in_the_config_at_its_old_value(config):
  fields = space.flat_fields(config)
  for field, old in records.ADDED_FIELDS.items():
    assert fields[field] == old, field


def test_an_old_configs_chunks_keep_their_names(config):
  old = before_the_added_fields(config)
  assert checkpoint.chunk_key([config], [0, 1], 0) == checkpoint.chunk_key([old], [0, 1], 0)
  neutral = space.with_overrides(config, {'train.checkpoint_every': 7})
  assert checkpoint.chunk_key([neutral], [0, 1], 0) == checkpoint.chunk_key([old], [0, 1], 0)


@pytest.mark.parametrize('field, value', [('dataset.scaling', 'minmax'),
                                          ('sweep.gp.batch_size', 4),
                                          ('sweep.pruner', 'median')])
def test_an_added_field_away_from_its_old_value_is_another_chunk_and_config(
    config, tmp_path, field, value):
  old = before_the_added_fields(config)
  changed = space.with_overrides(config, {field: value})
  assert checkpoint.chunk_key([changed], [0], 0) != checkpoint.chunk_key([old], [0], 0)
  with open(os.path.join(tmp_path, 'config.json'), 'w') as f:
    f.write(old.to_json_best_effort())
  checks.check_workdir(config, str(tmp_path))  # The old workdir matches today's defaults.
  was = records.ADDED_FIELDS[field]
  with pytest.raises(checks.ConfigError, match=f'{field} was {was!r}, now {value!r}'):
    checks.check_workdir(changed, str(tmp_path))
