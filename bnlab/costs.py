"""What a trial's model costs, for sweep.objectives (bnlab.pareto.COSTS).

    param_count        the parameters of one member's model (BN's running averages excluded:
                       they are statistics, not learned)
    flops_per_example  the floating-point operations of one example's forward pass in eval mode,
                       as XLA's cost analysis counts them on the lowered program (a multiply-add
                       is two); nothing is compiled or run to count them
    seconds_per_epoch  the trial's share of its program's wall time per epoch (record.seconds,
                       which divides each epoch among the members that trained it)

The first two depend on the shape-deciding config only (member.static_config): one abstract
init and one lowering per bucket, cached.
"""

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from bnlab import member
from bnlab import models
from bnlab import records


@functools.lru_cache(maxsize=256)
def _model_costs(static: ml_collections.FrozenConfigDict, num_classes: int,
                 example_shape: tuple[int, ...]) -> tuple[int, float]:
  # Any valid hyperparameters: they change values, not shapes or operation counts.
  model = models.make_model(static.model, num_classes, dict.fromkeys(member.MODEL_HPARAMS, 0.5))
  x = jax.ShapeDtypeStruct((1,) + example_shape, jnp.float32)
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
  params = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(variables['params']))
  analysis = jax.jit(functools.partial(model.apply, train=False)).lower(variables, x)
  analysis = analysis.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # One entry per device program in some versions.
    analysis = analysis[0]
  return params, float(analysis.get('flops', math.nan))


def model_costs(config: ml_collections.ConfigDict, num_classes: int,
                example_shape: tuple[int, ...]) -> dict[str, float]:
  """{'param_count', 'flops_per_example'} of the model of a trial `config` on examples of
  `example_shape` (the features, without the batch axis)."""
  params, flops = _model_costs(member.static_config(config), num_classes, tuple(example_shape))
  return {'param_count': float(params), 'flops_per_example': flops}


def with_costs(record: records.TrialRecord, model: dict[str, Any]) -> records.TrialRecord:
  """`record` with the model's costs and its seconds per epoch among its metrics."""
  per_epoch = record.seconds / record.epochs if record.epochs else math.nan
  return dataclasses.replace(record, metrics={**record.metrics, **model,
                                              'seconds_per_epoch': float(per_epoch)})
