"""Nothing damaged is trusted: checkpoints, journal entries and finished results are verified.

Each test damages a copy of one finished sweep the way a disk, a crash or a careless edit would,
runs the sweep again, and checks that the damage is named, that only what it touched is trained
again, and that the results equal the undamaged sweep's (resume is bit-exact).
"""

import glob
import json
import logging
import os
import shutil

import pytest

from bnlab import integrity
from bnlab import population as population_lib
from bnlab import records
from bnlab import sweep
from tests.test_resume import _config  # The same small sweep, checkpointed every epoch.
from tests.test_resume import _results


@pytest.fixture(scope='module')
def finished(tmp_path_factory, data_dir):
  from configs import test as test_config  # pylint: disable=import-outside-toplevel
  config = _config(test_config.get_config())
  config.dataset.data_dir = data_dir
  # Kept, to stand for a run killed before its journal writes (_unfinish): those runs have them.
  config.train.keep_checkpoints = True
  workdir = str(tmp_path_factory.mktemp('finished') / 'run')
  sweep.run(config, workdir)
  return config, workdir, _results(workdir)


@pytest.fixture
def copy(finished, tmp_path):
  """A copy of the finished workdir to damage: (config, workdir, the undamaged results)."""
  config, workdir, results = finished
  target = str(tmp_path / 'run')
  shutil.copytree(workdir, target)
  return config, target, results


@pytest.fixture
def epochs(monkeypatch):
  """The trials of every epoch trained from now on, one list per Population.run_epoch call."""
  calls = []
  real = population_lib.Population.run_epoch

  def counted(self, *args, **kwargs):
    calls.append(self.trials[:self.size].tolist())
    return real(self, *args, **kwargs)

  monkeypatch.setattr(population_lib.Population, 'run_epoch', counted)
  return calls


def _unfinish(workdir):
  """The workdir as a kill before the journal writes would leave it: checkpoints only."""
  os.remove(os.path.join(workdir, 'checkpoints', 'complete.json'))
  for path in glob.glob(os.path.join(workdir, 'checkpoints', 'journal', '*.json')):
    os.remove(path)


def _chunks(workdir):
  """{chunk key: [trial ids]} of the journal."""
  out = {}
  for path in glob.glob(os.path.join(workdir, 'checkpoints', 'journal', '*.json')):
    with open(path) as f:
      out[os.path.basename(path)[:-5]] = [r['trial'] for r in json.load(f)['records']]
  return out


def _garble(path, offset=100, size=64):
  with open(path, 'r+b') as f:
    f.seek(min(offset, max(os.path.getsize(path) - size, 0)))
    f.write(b'\xff' * size)


def _largest_state_file(workdir, chunk, step):
  found = glob.glob(os.path.join(workdir, 'checkpoints', 'populations', chunk, str(step), 'state',
                                 '**', '*'), recursive=True)
  return max((p for p in found if os.path.isfile(p)), key=os.path.getsize)


def test_a_garbled_checkpoint_is_named_and_its_chunk_goes_on_from_the_sound_one_before(
    copy, epochs, caplog):
  config, workdir, expected = copy
  chunks = _chunks(workdir)
  damaged = sorted(chunks)[0]
  _unfinish(workdir)
  _garble(_largest_state_file(workdir, damaged, 2))
  with caplog.at_level(logging.WARNING):
    sweep.run(config, workdir)
  assert _results(workdir) == expected  # Not a trial flipped to `diverged`.
  assert any(damaged in r.getMessage() and 'is damaged' in r.getMessage() for r in caplog.records)
  # The damaged chunk trains epochs 2 and 3 again (from its epoch-1 checkpoint), the others only 3.
  assert sorted(epochs) == sorted([chunks[damaged]] + list(chunks.values()))


def test_a_checkpoint_without_its_manifest_is_not_trusted(copy, epochs):
  config, workdir, expected = copy
  chunks = _chunks(workdir)
  _unfinish(workdir)
  for path in glob.glob(os.path.join(workdir, 'checkpoints', 'manifests', '*', '*.json')):
    os.remove(path)  # As a checkpoint whose save was killed before its manifest.
  sweep.run(config, workdir)
  assert _results(workdir) == expected
  assert len(epochs) == 3 * len(chunks)  # Every chunk from its first epoch.


@pytest.mark.parametrize('damage', ['metric', 'garbage', 'other_trials', 'no_checksum'])
def test_a_damaged_journal_entry_retrains_its_chunk_alone(copy, epochs, caplog, damage):
  config, workdir, expected = copy
  chunks = _chunks(workdir)
  key = sorted(chunks)[0]
  path = os.path.join(workdir, 'checkpoints', 'journal', f'{key}.json')
  os.remove(os.path.join(workdir, 'checkpoints', 'complete.json'))
  with open(path) as f:
    entry = json.load(f)
  if damage == 'metric':  # Valid JSON, wrong numbers: the checksum catches it.
    entry['records'][0]['metrics']['val_accuracy'] = 1.0
  elif damage == 'other_trials':  # Sound checksum, but another chunk's trials.
    for r in entry['records']:
      r['trial'] += 100
    entry['sha256'] = json.loads(integrity.records_text(
        [records.TrialRecord.from_json(r) for r in entry['records']]))['sha256']
  elif damage == 'no_checksum':  # An entry of an earlier bnlab, or not bnlab's at all.
    entry = entry['records']
  text = '{"sha256": "0' if damage == 'garbage' else json.dumps(entry)  # Cut short.
  with open(path, 'w') as f:
    f.write(text)
  with caplog.at_level(logging.WARNING):
    sweep.run(config, workdir)
  assert _results(workdir) == expected
  assert any(path in r.getMessage() for r in caplog.records)
  assert epochs == [chunks[key]]  # From its last checkpoint (epoch 2); the other chunk untouched.
  assert _chunks(workdir)[key] == chunks[key]  # Its entry is sound again.


@pytest.mark.parametrize('damage', ['truncate', 'edit_cell', 'delete'])
def test_damaged_results_of_a_finished_sweep_are_rebuilt_and_the_damaged_file_kept(
    copy, epochs, capsys, damage):
  config, workdir, expected = copy
  path = os.path.join(workdir, 'results.csv')
  with open(path) as f:
    text = f.read()
  damaged_text = {'truncate': text[:len(text) // 2], 'edit_cell': text.replace('ok', 'ko', 1),
                  'delete': None}[damage]
  if damaged_text is None:
    os.remove(path)
  else:
    with open(path, 'w') as f:
      f.write(damaged_text)
  sweep.run(config, workdir)
  assert 'results.csv' in capsys.readouterr().err
  assert _results(workdir) == expected
  assert epochs == []  # Rebuilt from the journal: nothing trained.
  if damaged_text is not None:
    with open(path + integrity.DAMAGED_SUFFIX) as f:
      assert f.read() == damaged_text  # Nothing a user may have edited is lost.
  assert integrity.completion(workdir).finished


@pytest.mark.parametrize('content', ['', 'garbage', '{"trials": 6, "best": 0}'])
def test_a_complete_json_that_cannot_vouch_for_the_results_is_not_trusted(
    copy, epochs, capsys, content):
  config, workdir, expected = copy
  with open(os.path.join(workdir, 'checkpoints', 'complete.json'), 'w') as f:
    f.write(content)
  sweep.run(config, workdir)
  assert 'complete.json' in capsys.readouterr().err
  assert _results(workdir) == expected and epochs == []
  assert integrity.completion(workdir).finished


def test_a_sound_finished_sweep_is_left_as_it_is(copy, epochs, capsys):
  config, workdir, _ = copy
  before = {p: open(p, 'rb').read() for p in glob.glob(os.path.join(workdir, '**', '*'),
                                                        recursive=True) if os.path.isfile(p)}
  assert sweep.run(config, workdir) is None
  assert 'is complete' in capsys.readouterr().out
  after = {p: open(p, 'rb').read() for p in before}
  assert after == before and epochs == []


def test_a_record_survives_the_journal_and_any_change_to_it_is_caught():
  record = records.TrialRecord(3, {'model.widths': (8,)}, records.OK,
                               {'val_accuracy': 0.5, 'val_loss': float('nan')}, 2,
                               history=[{'epoch': 1, 'val_accuracy': 0.25}])
  text = integrity.records_text([record])
  done, problem = integrity.read_records(text)
  assert problem == '' and done[0].trial == 3 and done[0].setting == record.setting
  assert done[0].metrics['val_accuracy'] == 0.5
  for old, new in [('0.25', '0.26'), ('"ok"', '"diverged"'), ('[8]', '[9]')]:
    assert old in text
    assert integrity.read_records(text.replace(old, new))[1]


def test_a_folder_is_checked_file_by_file_against_its_manifest(tmp_path):
  folder, manifest = tmp_path / 'ckpt', str(tmp_path / 'manifest.json')
  (folder / 'sub').mkdir(parents=True)
  (folder / 'a').write_bytes(b'one')
  (folder / 'sub' / 'b').write_bytes(b'two')
  assert integrity.check_folder(str(folder), manifest) == 'it has no manifest of checksums'
  with open(manifest, 'w') as f:
    json.dump(integrity.digests(str(folder)), f)
  assert integrity.check_folder(str(folder), manifest) == ''
  (folder / 'sub' / 'b').write_bytes(b'twO')
  assert 'sub/b' in integrity.check_folder(str(folder), manifest)
  (folder / 'sub' / 'b').write_bytes(b'two')
  (folder / 'extra').write_bytes(b'')  # A file the save did not write counts too.
  assert 'extra' in integrity.check_folder(str(folder), manifest)


def test_a_damaged_config_json_says_how_to_keep_the_work_and_that_way_keeps_it(
    copy, epochs, capsys):
  config, workdir, expected = copy
  path = os.path.join(workdir, 'config.json')
  with open(path, 'w') as f:
    f.write('{"sweep": ')
  with pytest.raises(records.ConfigError, match='delete config.json and rerun that config'):
    sweep.run(config, workdir)
  os.remove(path)
  sweep.run(config, workdir)
  assert 'config.json' in capsys.readouterr().err
  assert _results(workdir) == expected and epochs == []  # Nothing trained again.
  assert integrity.completion(workdir).finished
