"""Populations that a strategy reshapes between epochs (halving shrinks them, PBT copies members).

A `Group` is one engine.Population (one bucket chunk) plus its per-epoch history aligned with the
population's members and each member's share of wall time. Its first `size` members are trials;
the rest pad it to engine.padded_size (MIN_MEMBERS on every device, as many on each: a member axis
of one compiles to other kernels, and the member axis is split evenly over the devices).

A Group checkpoints as one Orbax population (bnlab.checkpoint) under a name the strategy derives
from its trials (`name`), so that a rerun of the same sweep finds it again.
"""

import dataclasses
import time
from typing import Any

from absl import logging
import numpy as np

from bnlab import checkpoint
from bnlab import engine


@dataclasses.dataclass
class Group:
  population: engine.Population
  size: int  # Members [0, size) are trials; the rest are padding copies.
  history: list  # Per epoch {metric: [N]} (and any extra per-member columns), member-aligned.
  seconds: Any  # [N] each member's share of the wall time so far.


def create(configs, data, num_classes, seed, max_parallel):
  """One Group per chunk of each bucket of `configs`; member trial ids are config indices."""
  groups = []
  for bucket in engine.buckets(configs):
    parts = engine.chunks(bucket, engine.member_limit(max_parallel))
    for chunk in parts:
      members = chunk + [chunk[0]] * (engine.padded_size(len(parts[0])) - len(chunk))
      start = time.perf_counter()
      population = engine.Population.create([configs[i] for i in members], members, data,
                                            num_classes, seed)
      seconds = np.full(len(members), (time.perf_counter() - start) / len(members))
      groups.append(Group(population, len(chunk), [], seconds))
  return groups


def run_epoch(group, data, on_epoch=None, extra=None):
  """Trains the group one epoch; appends its metrics (and `extra` [N] columns) to the history."""
  start = time.perf_counter()
  metrics = group.population.run_epoch(data)
  seconds = time.perf_counter() - start
  group.seconds = group.seconds + seconds / len(group.seconds)
  group.history.append({**metrics, **(extra or {})})
  if on_epoch:
    on_epoch(group.population, metrics, seconds)
  return metrics


def padded(indices):
  indices = list(indices)
  return indices + [indices[0]] * (engine.padded_size(len(indices)) - len(indices))


def take(group, keep, data):
  """The group reduced to members `keep` (local indices), state and history gathered."""
  index = np.asarray(padded(keep))
  history = [{name: value[index] for name, value in row.items()} for row in group.history]
  return Group(group.population.take(index, data), len(keep), history, group.seconds[index])


def results(group, data, members, status=None):
  """engine.member_result for `members`; `status` replaces 'ok' (never 'diverged')."""
  test = group.population.evaluate_test(data)
  out = []
  for k in members:
    result = engine.member_result(group.population.trials[k], k, group.history, test,
                                  group.population, float(group.seconds[k]))
    if status and result['status'] == 'ok':
      result['status'] = status
    out.append(result)
  return out


def scores(group, config):
  """The members' latest metric oriented so higher is better; diverged or non-finite is -inf."""
  last = group.history[-1]
  value = np.asarray(last[config.sweep.metric][:group.size], np.float64)
  value = value if config.sweep.mode == 'max' else -value
  bad = np.asarray(last['diverged'][:group.size]) | ~np.isfinite(value)
  return np.where(bad, -np.inf, value)


def name(prefix, group, configs, seed):
  """A checkpoint name fixed by `prefix` and the group's members: their configs and trial ids."""
  trials = [int(t) for t in group.population.trials]
  return f'{prefix}-{checkpoint.chunk_key([configs[t] for t in trials], trials, seed)}'


def save(group, checkpointer, key, extra):
  """Checkpoints the group as `key`: its population, history, seconds and the caller's `extra`
  (a JSON-able dict, e.g. PBT's explored values).

  The checkpointer keeps history metrics as float32; float64 columns (PBT's hyperparameters)
  ride in the metadata so they come back exact.
  """
  exact = sorted({k for row in group.history for k, v in row.items()
                  if np.asarray(v).dtype == np.float64})
  meta = {'extra': extra,
          'exact': {k: [np.asarray(row[k]).tolist() for row in group.history] for k in exact}}
  group.population.save(checkpointer, key, group.history, np.asarray(group.seconds).tolist(), meta)


def restore(group, checkpointer, key):
  """Continues the group from its last checkpoint `key`, if any; returns the `extra` saved with
  it, or None if there is none."""
  history, seconds, meta = group.population.restore(checkpointer, key)
  if meta is None:
    return None
  for column, values in meta['exact'].items():
    for row, value in zip(history, values):
      row[column] = np.asarray(value, np.float64)
  group.history, group.seconds = history, np.asarray(seconds, np.float64)
  logging.info('trials %s resume after epoch %d', group.population.trials[:group.size].tolist(),
               group.population.epoch)
  return meta['extra']
