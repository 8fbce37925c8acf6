"""Scale-out: 4 forced CPU devices and 2 processes over loopback give the 1-device results.

XLA_FLAGS must be set before JAX starts, so the multi-device runs are subprocesses. The sweep is
configs/test.py with SGD: Adam turns the float-level differences between programs of different
member counts into lr-sized steps (see programs.MIN_MEMBERS), SGD keeps them float-level.
"""

import csv
import json
import logging
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from bnlab import checks
from bnlab import parallel
from bnlab import population as population_lib
from bnlab import programs
from bnlab import sweep
from configs import test as test_config
from tests.conftest import ROOT

# 12 trials of one shape (one compile), at most 8 per program: two chunks, each filling every device.
OVERRIDES = {'optimizer.name': 'sgd', 'sweep.num_trials': 12, 'sweep.max_parallel': 8,
             'sweep.space.model.widths': ''}
METRICS = ('val_accuracy', 'val_loss', 'test_accuracy', 'train_loss')
COLLECTIVES = ('all-reduce', 'all-gather', 'all-to-all', 'collective-permute', 'reduce-scatter')

# The sweep in a process with forced devices, then how its programs and member state are laid out.
SCALED_RUN = """
import json, sys
sys.path.insert(0, {root!r})
import jax
from bnlab import data as data_lib, population, space, sweep
from configs import test
config = test.get_config()
config.update_from_flattened_dict({overrides!r})
config.dataset.data_dir = {data_dir!r}
sweep.run(config, {workdir!r})
settings = space.random_trials(sweep.prepare(config), config.seed, 8)
configs = [space.with_overrides(config, s) for s in settings]
data, num_classes = data_lib.load(config.dataset)
population = population.Population.create(configs, settings, list(range(8)), data, num_classes, 0)
kernel = population.state.params['Dense_0']['kernel']
programs = population.programs
texts = [programs.init.as_text(), programs.epoch.as_text(), programs.test.as_text()]
print('SCALED ' + json.dumps({{
    'devices': jax.device_count(), 'spec': list(kernel.sharding.spec),
    'shards': sorted(s.data.shape[0] for s in kernel.addressable_shards),
    'block': programs.block,
    'collectives': sorted({{c for c in {collectives!r} for t in texts if c in t}})}}))
"""


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _env(devices, **extra):
  """The environment of a process with `devices` forced CPU devices (conftest's one dropped);
  with devices=None, none forced, as a user's shell has it."""
  env = {k: v for k, v in os.environ.items() if k not in ('JAX_NUM_CPU_DEVICES', 'XLA_FLAGS')}
  if devices is not None:
    env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  return {**env, **extra}


def _flags(data_dir):
  return [f'--config.{k}={v}' for k, v in OVERRIDES.items()] + [
      f'--config.dataset.data_dir={data_dir}']


def _launch(args, devices):
  return subprocess.Popen([sys.executable, os.path.join(ROOT, 'launch.py'),
                           '--config=configs/test.py', *args], cwd=ROOT, env=_env(devices),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process):
  out, err = process.communicate(timeout=600)
  if process.returncode != 0:
    raise AssertionError(err[-3000:])
  return out, err


def _rows(workdir):
  with open(os.path.join(workdir, 'results.csv')) as f:
    return list(csv.DictReader(f))


def _assert_same_results(rows, baseline):
  """Same trials, settings and status; metrics equal to float rounding."""
  assert len(rows) == len(baseline) == OVERRIDES['sweep.num_trials']
  for row, base in zip(rows, baseline):
    for key in base:
      if key in METRICS:
        np.testing.assert_allclose(float(row[key]), float(base[key]), rtol=1e-5, err_msg=key)
      elif key != 'seconds':
        assert row[key] == base[key], key


@pytest.fixture(scope='module')
def baseline(tmp_path_factory, data_dir):
  """The sweep on this (1-device) test process; also builds the digits before any subprocess."""
  assert jax.device_count() == 1
  config = test_config.get_config()
  config.update_from_flattened_dict(OVERRIDES)
  config.dataset.data_dir = data_dir
  workdir = str(tmp_path_factory.mktemp('one_device'))
  sweep.run(config, workdir)
  return _rows(workdir)


@pytest.mark.parametrize('devices, block_bytes, block', [
    (4, None, 2),  # 8 members, 2 on each device.
    # 4 on each device, in 2 blocks of 2 (programs.in_blocks); slow: one device's blocks are
    # test_population's, and the 4-device case covers the sharding.
    pytest.param(2, '1', programs.MIN_MEMBERS, marks=pytest.mark.slow),
])
def test_more_devices_give_the_one_device_results(baseline, data_dir, tmp_path, devices,
                                                  block_bytes, block):
  script = SCALED_RUN.format(root=ROOT, overrides=OVERRIDES, data_dir=data_dir,
                             workdir=str(tmp_path), collectives=COLLECTIVES)
  extra = {'BNLAB_BLOCK_BYTES': block_bytes} if block_bytes else {}
  result = subprocess.run([sys.executable, '-c', script], cwd=ROOT, env=_env(devices, **extra),
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  (line,) = [l for l in result.stdout.splitlines() if l.startswith('SCALED ')]
  info = json.loads(line[len('SCALED '):])
  assert info['devices'] == devices
  assert info['spec'] == [parallel.MEMBER_AXIS]
  assert info['shards'] == [8 // devices] * devices
  assert info['block'] == block
  assert info['collectives'] == []  # Members never talk: no cross-device traffic at all.
  _assert_same_results(_rows(tmp_path), baseline)


def test_two_processes_over_loopback_give_the_one_device_results(baseline, data_dir, tmp_path):
  # One workdir, as on a pod (a filesystem every host mounts): Orbax checkpoints are collective.
  address, workdir = f'127.0.0.1:{_free_port()}', tmp_path / 'shared'
  processes = [_launch([f'--workdir={workdir}', f'--coordinator_address={address}',
                        '--num_processes=2', f'--process_id={i}'] + _flags(data_dir), devices=2)
               for i in range(2)]
  outputs = [_finish(p) for p in processes]
  assert 'on 4 cpu device(s) in 2 process(es)' in outputs[0][1]
  assert 'best: trial' in outputs[0][0] and 'best: trial' not in outputs[1][0]  # Process 0 reports.
  with open(workdir / 'progress.jsonl') as f:  # Process 0 alone writes it: one row per trial-epoch.
    assert len(f.readlines()) == len(baseline) * test_config.get_config().train.epochs
  _assert_same_results(_rows(workdir), baseline)


def test_launch_makes_a_cpu_device_per_core_with_the_one_device_results(baseline, data_dir,
                                                                        tmp_path):
  _, err = _finish(_launch([f'--workdir={tmp_path}'] + _flags(data_dir), devices=None))
  assert f'on {parallel.cpu_cores()} cpu device(s) in 1 process(es)' in err
  _assert_same_results(_rows(tmp_path), baseline)


def test_the_sweep_ends_with_a_throughput_summary(tmp_path, config, digits, caplog):
  config.sweep.num_trials = 2
  caplog.set_level(logging.INFO)
  sweep.run(config, str(tmp_path))
  (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith('throughput')]
  steps_per_epoch = digits[0]['y_train'].shape[0] // config.train.batch_size
  assert f'2 members trained, {2 * config.train.epochs * steps_per_epoch} member-steps' in line
  assert 'on 1 cpu device(s) in 1 process(es)' in line
  assert 'peak memory per device: n/a' in line  # JAX reports no memory stats on CPU.


@pytest.mark.parametrize('count,devices,minimum', [(1, 1, 2), (3, 4, 8), (9, 4, 8), (13, 8, 1),
                                                   (16, 8, 16), (100, 3, 6)])
def test_padding_fills_every_device_alike(count, devices, minimum):
  size = parallel.padded_members(count, devices, minimum)
  assert size % devices == 0 and size >= max(count, minimum)
  assert size - devices < max(count, minimum)  # The smallest such multiple.


@pytest.mark.parametrize('max_parallel,devices', [(256, 1), (256, 3), (5, 4), (1, 4), (7, 2)])
def test_chunks_of_a_bucket_fill_every_device_within_the_limit(max_parallel, devices):
  limit = parallel.member_limit(max_parallel, devices, programs.MIN_MEMBERS)
  assert limit % devices == 0 and limit >= programs.MIN_MEMBERS * devices
  assert limit <= max(max_parallel, programs.MIN_MEMBERS * devices)
  for trials in (1, 7, 40, 1000):
    parts = population_lib.chunks(list(range(trials)), limit)
    size = parallel.padded_members(len(parts[0]), devices, programs.MIN_MEMBERS * devices)
    assert size <= limit and all(len(p) <= size for p in parts)
    assert sum(parts, []) == list(range(trials))


def test_put_places_members_and_to_host_gathers_them():
  mesh = parallel.member_mesh()
  tree = {'a': np.arange(6, dtype=np.float32), 'b': np.ones((6, 2), np.int32)}
  placed = parallel.put(tree, parallel.member_sharding(mesh))
  assert placed['a'].sharding.spec == jax.sharding.PartitionSpec(parallel.MEMBER_AXIS)
  assert parallel.put(placed, parallel.member_sharding(mesh))['a'] is placed['a']
  jax.tree.map(np.testing.assert_array_equal, parallel.to_host(placed), tree)


@pytest.mark.parametrize('flags,field', [
    (('', 2, -1), "coordinator_address='' but num_processes=2 process_id=-1"),
    (('', 0, 1), "coordinator_address='' but num_processes=0 process_id=1"),
    (('localhost', 2, 0), "coordinator_address='localhost'"),
    (('127.0.0.1:1234', 0, 0), 'num_processes=0'),
    (('127.0.0.1:1234', 2, 2), 'process_id=2'),
    (('127.0.0.1:1234', 2, -1), 'process_id=-1'),
])
def test_bad_distributed_flags_name_the_field(flags, field):
  with pytest.raises(checks.ConfigError, match=f'^{field}'):
    parallel.check_flags(*flags)
  parallel.check_flags('', 0, -1)  # All left out: one process (or detected on Cloud TPU).
  parallel.check_flags('127.0.0.1:1234', 2, 1)


def test_launch_refuses_a_bad_process_id_in_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'launch.py'), '--config=configs/test.py',
       f'--workdir={tmp_path}/w', '--coordinator_address=127.0.0.1:1', '--num_processes=2',
       '--process_id=5'], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      'error: process_id=5 must be in 0..1 (num_processes - 1)')
  assert 'Traceback' not in result.stderr and not os.path.exists(tmp_path / 'w')


# Population reshaping (halving's take, PBT's copy_state and set_hparams) and per-member seeds.
RESHAPED_RUN = """
import json, sys
sys.path.insert(0, {root!r})
from bnlab import sweep
from configs import test
out = {{}}
for name, extra in {runs!r}.items():
  config = test.get_config()
  config.update_from_flattened_dict({{**{overrides!r}, **extra}})
  config.dataset.data_dir = {data_dir!r}
  results = sweep.run(config, {workdir!r} + '/' + name)
  out[name] = [[r.trial, r.status, r.epochs, r.value('val_loss')] for r in results]
print('RESHAPED ' + json.dumps(out))
"""
RESHAPED = {'halving': {'sweep.strategy': 'halving', 'sweep.halving.eta': 2},
            'pbt': {'sweep.strategy': 'pbt'},
            'seeds': {'sweep.num_trials': 3, 'sweep.seeds': 2}}


@pytest.mark.slow
def test_halving_pbt_and_seeds_on_four_devices_give_the_one_device_results(data_dir, tmp_path):
  overrides = {**OVERRIDES, 'sweep.num_trials': 6, 'train.epochs': 3}
  outputs = []
  for devices in (1, 4):  # 6 trials: 6 or 8 members, then halving's 3 and 1 padded to 8 on 4.
    script = RESHAPED_RUN.format(root=ROOT, runs=RESHAPED, overrides=overrides,
                                 data_dir=data_dir, workdir=str(tmp_path / str(devices)))
    result = subprocess.run([sys.executable, '-c', script], cwd=ROOT, env=_env(devices),
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [l for l in result.stdout.splitlines() if l.startswith('RESHAPED ')]
    outputs.append(json.loads(line[len('RESHAPED '):]))
  for name in RESHAPED:
    one, four = outputs[0][name], outputs[1][name]
    assert [r[:3] for r in four] == [r[:3] for r in one], name
    np.testing.assert_allclose([r[3] for r in four], [r[3] for r in one], rtol=1e-5, err_msg=name)
