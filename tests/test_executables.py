"""bnlab.executables: kept programs load without tracing and compute bit for bit what the compiled
ones do; an entry that does not verify is compiled again; nothing JAX's own cache answered is
kept; the key moves with everything that shapes a program; the folder's other files are safe."""

import json
import os
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

from bnlab import executables
from bnlab import integrity
from bnlab import programs
from bnlab import sweep
from tests.conftest import ROOT

# Run in a fresh interpreter: JAX decides once per process whether its persistent cache is on,
# and an earlier test of this process may have turned it on.
SCENARIO = r'''
import json, os, sys
import jax, jax.extend, numpy as np
from absl import logging
from bnlab import data as data_lib, executables, member, programs, space
from configs import test as test_config
from tests.conftest import create_population

folder, data_dir, jax_cache = sys.argv[1], sys.argv[2], sys.argv[3] == 'jax'
programs.enable_compilation_cache(folder, jax_cache=jax_cache)
config = test_config.get_config()
config.dataset.data_dir = data_dir
data, num_classes = data_lib.load(config.dataset)
configs = [space.with_overrides(config, {'optimizer.learning_rate': lr}) for lr in (1e-2, 3e-2)]
traced, warnings = [], []
epoch_and_eval = member.epoch_and_eval
member.epoch_and_eval = lambda *a: traced.append(1) or epoch_and_eval(*a)
logging.warning = lambda message, *args: warnings.append(message % args)
entries = lambda: sorted(n for n in os.listdir(executables.folder())
                         if n.endswith(executables.SUFFIX))

def run():
  """Creates and trains the population afresh (no in-process cache): its state and metrics."""
  programs.compile_programs.cache_clear()
  jax.clear_caches()
  jax.extend.backend.clear_in_memory_compilation_cache()
  population = create_population(configs, [0, 1], data, num_classes)
  metrics = population.run_epoch(data)
  return [np.asarray(a) for a in jax.tree.leaves((population.state, metrics))]

out = {}
compiled = run()
out['entries_after_compile'], out['traced_by_compile'] = len(entries()), len(traced)
if jax_cache:
  hits = executables.jax_cache_hits()
  for name in entries():
    os.remove(os.path.join(executables.folder(), name))
  run()  # Answered by JAX's cache now.
  out['jax_cache_hits'] = executables.jax_cache_hits() - hits
  out['entries_after_jax_hit'] = len(entries())
else:
  loaded = run()
  out['traced_by_load'] = len(traced) - out['traced_by_compile']
  out['bit_identical'] = all(np.array_equal(a, b) for a, b in zip(compiled, loaded))
  path = os.path.join(executables.folder(), entries()[0])
  with open(path, 'r+b') as f:  # One flipped byte in the middle of the executables.
    f.seek(os.path.getsize(path) // 2)
    byte = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([byte[0] ^ 1]))
  before = len(traced)
  again = run()
  out['traced_after_damage'] = len(traced) - before
  out['warnings'] = [w for w in warnings if executables.SUFFIX in w]
  out['bit_identical_after_damage'] = all(np.array_equal(a, b) for a, b in zip(compiled, again))
  before = len(traced)
  run()
  out['traced_after_rewrite'] = len(traced) - before
print(json.dumps(out))
'''


def _scenario(tmp_path, data_dir, mode):
  result = subprocess.run([sys.executable, '-c', SCENARIO, str(tmp_path), data_dir, mode],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_kept_programs_load_untraced_compute_bit_for_bit_and_damage_is_recompiled(
    tmp_path, data_dir, digits):
  del digits  # Builds the session's data dir.
  out = _scenario(tmp_path, data_dir, 'bnlab')
  assert out['entries_after_compile'] == 1 and out['traced_by_compile'] == 1
  assert out['traced_by_load'] == 0 and out['bit_identical']
  assert out['traced_after_damage'] == 1 and out['bit_identical_after_damage']
  assert len(out['warnings']) == 1 and 'do not match their digest' in out['warnings'][0]
  assert out['traced_after_rewrite'] == 0  # The damaged entry was written again, whole.


def test_what_jax_cache_answered_is_not_kept(tmp_path, data_dir, digits):
  # An executable loaded by JAX's cache serializes without its kernels on a CPU: kept, it would
  # fail at its first call in the next launch.
  del digits
  out = _scenario(tmp_path, data_dir, 'jax')
  assert out['entries_after_compile'] == 1  # JAX's cache missed: a fresh compile, kept.
  assert out['jax_cache_hits'] >= 3 and out['entries_after_jax_hit'] == 0


def _device(**changes):
  fields = {'id': 0, 'platform': 'cpu', 'device_kind': 'cpu', 'process_index': 0,
            'client': types.SimpleNamespace(platform_version='cpu')}
  return types.SimpleNamespace(**{**fields, **changes})


def test_the_key_moves_with_every_part_of_the_program(monkeypatch):
  parts = {'static': {'model': {'widths': [16, 16]}}, 'members': 4, 'own_seeds': False}
  devices = [_device(), _device(id=1)]
  base = executables.key(parts, devices)
  assert executables.key(dict(parts), list(devices)) == base  # Equal inputs, equal key.
  variants = [
      executables.key({**parts, 'members': 8}, devices),
      executables.key({**parts, 'static': {'model': {'widths': [16]}}}, devices),
      executables.key({**parts, 'own_seeds': True}, devices),
      executables.key(parts, devices[:1]),
      executables.key(parts, [_device(id=1), _device()]),
      executables.key(parts, [_device(device_kind='other'), _device(id=1)]),
      executables.key(parts, [_device(process_index=1), _device(id=1)]),
  ]
  with monkeypatch.context() as m:
    m.setenv('XLA_FLAGS', '--xla_cpu_enable_fast_math=true')
    variants.append(executables.key(parts, devices))
  with monkeypatch.context() as m:
    m.setattr(executables, '_source_digest', lambda package: 'edited')
    variants.append(executables.key(parts, devices))
  with monkeypatch.context() as m:
    m.setattr(executables.metadata, 'version', lambda name: '0.0.1')
    variants.append(executables.key(parts, devices))
  with monkeypatch.context() as m:
    m.setattr(executables, '_cpu', lambda: 'another CPU')
    variants.append(executables.key(parts, devices))
  with jax.default_matmul_precision('highest'):
    variants.append(executables.key(parts, devices))
  assert len({base, *variants}) == len(variants) + 1


def test_the_source_digest_covers_every_python_file(tmp_path, monkeypatch):
  package = tmp_path / 'somepackage'
  (package / 'sub').mkdir(parents=True)
  (package / '__init__.py').write_text('')
  (package / 'sub' / 'a.py').write_text('x = 1\n')
  monkeypatch.syspath_prepend(str(tmp_path))
  __import__('somepackage')
  digest = lambda: executables._source_digest.__wrapped__('somepackage')
  first = digest()
  (package / 'notes.txt').write_text('not code')
  assert digest() == first
  (package / 'sub' / 'a.py').write_text('x = 2\n')
  edited = digest()
  (package / 'sub' / 'b.py').write_text('')
  assert len({first, edited, digest()}) == 3


def test_programs_are_not_kept_for_a_users_model_several_processes_or_no_folder(monkeypatch,
                                                                                  tmp_path):
  monkeypatch.setattr(executables, '_folder', str(tmp_path))
  assert programs.keeps_programs(['mlp', 'cnn'])
  assert not programs.keeps_programs(['mlp', 'tests.custom_models:BNNet'])
  spec = types.SimpleNamespace(static=types.SimpleNamespace(model=types.SimpleNamespace(
      name='tests.custom_models:BNNet')))
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('members',))
  assert programs.cache_name(spec, 2, (), False, False, mesh) is None
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  assert not programs.keeps_programs(['mlp'])
  monkeypatch.setattr(jax, 'process_count', lambda: 1)
  monkeypatch.setattr(executables, '_folder', None)
  spec.static.model.name = 'mlp'
  assert programs.cache_name(spec, 2, (), False, False, mesh) is None


@pytest.mark.parametrize('model_name, jax_cache', [('mlp', False),
                                                   ('tests.custom_models:BNNet', True)])
def test_a_sweep_turns_on_jax_cache_only_where_bnlab_cannot_keep_its_programs(
    config, tmp_path, monkeypatch, model_name, jax_cache):
  asked = []

  def enable(path=None, jax_cache=True):
    asked.append((path, jax_cache))
    raise KeyboardInterrupt  # Stops the sweep there: nothing else to see.

  monkeypatch.setattr(programs, 'enable_compilation_cache', enable)
  config.model.name = model_name
  config.sweep.space.model.widths = ''
  with pytest.raises(KeyboardInterrupt):
    sweep.run(config, str(tmp_path / 'run'))
  assert asked == [(None, jax_cache)]


def _entry(folder, name, size, age):
  path = folder / (name * 64 + executables.SUFFIX)
  path.write_bytes(b'x' * size)
  os.utime(path, (1e9 - age, 1e9 - age))
  return path


def test_prune_removes_the_least_recently_used_entries_and_nothing_else(tmp_path, monkeypatch):
  monkeypatch.setattr(executables, '_folder', str(tmp_path))
  newest, middle, oldest = (_entry(tmp_path, c, 100, age) for c, age in (('a', 1), ('b', 2),
                                                                        ('c', 3)))
  others = [tmp_path / 'notes.bnlab-program', tmp_path / ('d' * 64 + '.txt'), tmp_path / 'x.tmp']
  for path in others:
    path.write_bytes(b'y' * 1000)
  executables.prune(250)
  assert newest.exists() and middle.exists() and not oldest.exists()
  executables.prune(10)  # The newest stays, whatever its size.
  assert newest.exists() and not middle.exists()
  assert all(p.exists() for p in others)


def test_an_entry_that_does_not_verify_is_not_loaded(tmp_path, monkeypatch):
  monkeypatch.setattr(executables, '_folder', str(tmp_path))
  warnings = []
  monkeypatch.setattr(executables.logging, 'warning', lambda m, *a: warnings.append(m % a))
  assert executables.load('a' * 64, jax.devices()) is None and not warnings  # Absent.
  garbage = b'not a digest'.ljust(executables.DIGEST_BYTES) + b'payload'
  (tmp_path / ('a' * 64 + executables.SUFFIX)).write_bytes(garbage)
  assert executables.load('a' * 64, jax.devices()) is None
  payload = b'not a pickle'
  digest = integrity.sha256(payload).encode()
  (tmp_path / ('b' * 64 + executables.SUFFIX)).write_bytes(digest + payload)
  assert executables.load('b' * 64, jax.devices()) is None
  assert 'do not match their digest' in warnings[0] and len(warnings) == 2


def test_an_unwritable_folder_is_logged_and_left_alone(tmp_path, monkeypatch):
  blocker = tmp_path / 'file'
  blocker.write_text('mine')
  monkeypatch.setattr(executables, '_folder', str(blocker / 'programs'))
  warnings = []
  monkeypatch.setattr(executables.logging, 'warning', lambda m, *a: warnings.append(m % a))
  compiled = jax.jit(lambda x: x + 1).lower(np.float32(1)).compile()  # Kept or not: unwritable.
  executables.save('a' * 64, [compiled], None)
  assert len(warnings) == 1 and 'not kept' in warnings[0]
  assert blocker.read_text() == 'mine'


def test_an_entry_loads_from_a_folder_it_cannot_touch(tmp_path, monkeypatch):
  monkeypatch.setattr(executables, '_folder', str(tmp_path))
  x = np.arange(4, dtype=np.float32)
  # A constant of this run's own: JAX's persistent cache, if an earlier test of this process
  # turned it on, cannot hold the program, so the compile is fresh and can be kept.
  constant = float(np.random.default_rng().integers(1, 2**20))
  compiled = jax.jit(lambda a: a * 2 + constant).lower(x).compile()
  executables.save('c' * 64, [compiled], {'block': 3})

  def refuse(*unused_args):
    raise PermissionError('read-only file system')

  monkeypatch.setattr(executables.os, 'utime', refuse)
  entry = executables.load('c' * 64, jax.devices())
  assert entry.extra == {'block': 3}
  np.testing.assert_array_equal(entry.programs[0](x), compiled(x))


def test_a_write_that_fails_leaves_no_partial_file(tmp_path, monkeypatch):
  monkeypatch.setattr(executables, '_folder', str(tmp_path))
  (tmp_path / 'mine.tmp').write_text('a file of the user')
  warnings = []
  monkeypatch.setattr(executables.logging, 'warning', lambda m, *a: warnings.append(m % a))

  def full(*unused_args):
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(executables.os, 'replace', full)
  compiled = jax.jit(lambda x: x - 1).lower(np.float32(1)).compile()  # Kept or not: disk full.
  executables.save('d' * 64, [compiled], None)
  assert len(warnings) == 1 and 'No space left' in warnings[0]
  assert sorted(p.name for p in tmp_path.iterdir()) == ['mine.tmp']


def test_a_cache_folder_that_is_not_local_gets_jax_cache_alone(monkeypatch):
  updates = {}
  monkeypatch.setattr(jax.config, 'update', lambda name, value: updates.update({name: value}))
  assert programs.enable_compilation_cache('gs://bucket/cache', jax_cache=False)
  assert executables.folder() is None  # Nothing written under a local folder named "gs:".
  assert updates['jax_compilation_cache_dir'] == 'gs://bucket/cache'
