"""How many members fit in one compiled program: an estimate made before anything compiles.

A member's bytes are its state (parameters, batch_stats, optimizer state: read off the shapes of
the init program by `jax.eval_shape`, which traces but compiles nothing), its gradients and
updates (two more copies of the parameters), and the activations of one batch (every layer's
output, captured by `jax.eval_shape` of the forward pass, counted twice for the backward pass's
residuals and cotangents) or of one evaluation chunk, whichever is larger. The data is shared by
all members and counted once.

On two or more CPU devices XLA:CPU's YNNPACK matmul fusions hold memory for each call until the
epoch program returns: about CPU_CALL_BYTES for each block of members (programs.member_block) at
each step of the epoch and each chunk of its validation pass (BENCHMARKS.md, "Memory"; one
device, or an accelerator, shows none). A member's share of it is counted as `epoch_calls`, so
long epochs at large N (Fashion-MNIST's 750 steps) are planned for.

The budget is the accelerator's memory limit where the device reports one, else half of the
host's physical memory, shared by the process's CPU devices (launch.py makes one per core). Both
are fixed per machine, so the chunking they give (and with it every result) does not change
between a run and its resume.
"""

import functools
import os

from absl import logging
import jax
import ml_collections
import numpy as np

from bnlab import member
from bnlab import programs
from bnlab import records

ACCELERATOR_SHARE = 0.9  # Of the device's bytes_limit: leave room for XLA's own scratch.
HOST_SHARE = 0.5  # Of physical RAM on CPU, which the OS and the input pipeline share.
BACKWARD_FACTOR = 2  # Forward activations are kept for the backward pass, which makes as many.
# Held per block of members per call of an epoch on two or more CPU devices (the module doc):
# fitted to Fashion-MNIST at N = 1,024 (peak RSS 13.46 GiB), 14.4 KiB; BENCHMARKS.md, change 18.
CPU_CALL_BYTES = 14_750


def _one_member_hparams(config):
  return jax.tree.map(lambda a: a[0], member.dynamic_hparams([config]))


def _activation_bytes(spec, hparams, variables, example_shape, dtype, batch):
  """Bytes of every layer's output for one batch of `batch` examples (shapes only)."""
  model = spec.make_model(hparams['model'])
  x = jax.ShapeDtypeStruct((batch,) + example_shape, dtype)

  def forward(variables, x):
    _, state = model.apply(variables, x, train=True, capture_intermediates=True,
                           mutable=['batch_stats', 'intermediates'])
    return state['intermediates']

  return programs.tree_bytes(jax.eval_shape(forward, variables, x))


def member_bytes(config: ml_collections.ConfigDict, num_classes: int,
                 shapes: programs.DataShapes) -> dict[str, int]:
  """{state, gradients, activations, total}: bytes one member of `config`'s bucket needs."""
  (x_shape, x_dtype) = shapes[0]
  spec = member.make_spec(member.static_config(config), num_classes, x_shape[0])
  hparams = _one_member_hparams(config)
  init = functools.partial(member.init_member, spec)
  state = jax.eval_shape(init, hparams, 0, jax.ShapeDtypeStruct(tuple(x_shape), x_dtype))
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  train = BACKWARD_FACTOR * _activation_bytes(spec, hparams, variables, tuple(x_shape[1:]),
                                              x_dtype, spec.static.train.batch_size)
  evaluation = _activation_bytes(spec, hparams, variables, tuple(x_shape[1:]), x_dtype,
                                 min(member.EVAL_CHUNK, shapes[2][0][0]))
  sizes = {'state': programs.tree_bytes(state), 'gradients': 2 * programs.tree_bytes(state.params),
           'activations': max(train, evaluation)}
  sizes['epoch_calls'] = epoch_call_bytes(sizes['state'], spec.static.train.batch_size, shapes)
  sizes['total'] = sum(sizes.values())
  return sizes


def epoch_call_bytes(state_bytes: int, batch_size: int, shapes: programs.DataShapes,
                     platform: str | None = None, devices: int | None = None) -> int:
  """One member's share of what the epoch program's calls hold until it returns on two or more
  CPU devices (the module doc): CPU_CALL_BYTES per call of its block, over its block. The
  platform and device count default to this process's."""
  platform = platform or jax.local_devices()[0].platform
  devices = jax.local_device_count() if devices is None else devices
  if platform != 'cpu' or devices < 2:
    return 0
  num_train, num_val = shapes[0][0][0], shapes[2][0][0]
  calls = num_train // batch_size + -(-num_val // member.EVAL_CHUNK)
  block = programs.member_block(2**31, 2 * state_bytes, 'cpu')  # As _epoch_program blocks them.
  return CPU_CALL_BYTES * calls // block


def planned_bytes(sizes: dict[str, int], members: int, data_bytes: int) -> int:
  """What one program of `members` members of a bucket (`sizes`: member_bytes) is planned to
  hold on this process's devices together: the data on each, and the members they hold (the
  program splits its members evenly over every process's devices)."""
  local = members * jax.local_device_count() // jax.device_count()
  return data_bytes * jax.local_device_count() + local * sizes['total']


def device_budget(device: jax.Device | None = None) -> int:
  """Bytes a sweep may use on `device` (see the module doc)."""
  device = device or jax.local_devices()[0]
  stats = device.memory_stats() if hasattr(device, 'memory_stats') else None
  if stats and stats.get('bytes_limit'):
    return int(ACCELERATOR_SHARE * stats['bytes_limit'])
  host = HOST_SHARE * os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  return int(host / jax.local_device_count(device.platform))


def fit_parallel(configs: list[ml_collections.ConfigDict], shapes: programs.DataShapes,
                 num_classes: int, max_parallel: int, budget: int | None = None) -> int:
  """The members per program that fit every bucket within the budget and sweep.max_parallel.

  The budget is one device's: a program's members are split evenly over every device (the data
  replicated on each), so the fit is per device times the device count, rounded down to a
  multiple of it (programs.member_limit).

  Raises records.ConfigError when a bucket cannot fit even MIN_MEMBERS members (the smallest
  program bnlab builds), or when a batch is larger than the training split.
  """
  budget = device_budget() if budget is None else budget
  data_bytes = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in shapes)
  num_train = shapes[0][0][0]
  fit, every_size = max_parallel, []
  for bucket in member.buckets(configs):
    config = configs[bucket[0]]
    if config.train.batch_size > num_train:
      raise records.ConfigError(f'train.batch_size={config.train.batch_size} is larger than the '
                               f'{num_train} training examples of {config.dataset.name}')
    sizes = member_bytes(config, num_classes, shapes)
    members = (budget - data_bytes) // sizes['total']
    logging.info('memory: %.2f MiB per member (state %.2f, gradients %.2f, activations %.2f, '
                 'epoch calls %.2f) for model.widths=%s train.batch_size=%d; budget %.2f GiB: '
                 '%d members fit', sizes['total'] / 2**20, sizes['state'] / 2**20,
                 sizes['gradients'] / 2**20, sizes['activations'] / 2**20,
                 sizes['epoch_calls'] / 2**20, tuple(config.model.widths),
                 config.train.batch_size, budget / 2**30, max(members, 0))
    if members < programs.MIN_MEMBERS:
      raise records.ConfigError(
          f'model.widths={tuple(config.model.widths)} with train.batch_size='
          f'{config.train.batch_size}: {programs.MIN_MEMBERS} members need '
          f'{programs.MIN_MEMBERS * sizes["total"] / 2**30:.2f} GiB but the device has '
          f'{max(budget - data_bytes, 0) / 2**30:.2f} GiB for members; use a smaller model or batch')
    fit = min(fit, members * jax.device_count())
    every_size.append(sizes)
  fit = programs.member_limit(fit)
  logging.info('memory: up to %d members per program (sweep.max_parallel=%d), planned at %.2f '
               'GiB with the data at most', fit, max_parallel,
               max(planned_bytes(sizes, fit, data_bytes) for sizes in every_size) / 2**30)
  return int(fit)
