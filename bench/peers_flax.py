"""The Flax-examples peer: a jitted `train_step`, a Python loop over batches, trials in turn.

    python -m bench.peers_flax --system=flax_loop --workload=digits-3x128 --n=256 \
        --max_trials=8 --cache_dir=/tmp/bench

As in Flax's examples (imagenet/train.py, mnist/train.py): a `TrainState` with `batch_stats`,
`optax.chain(clip_by_global_norm, adam(lr, b2=b2))` built from the trial's numbers, host batches
fed to `jax.jit(train_step)` one step at a time. The optimizer is a static field of the
TrainState, so every trial's new learning rate compiles the step again (`flax_loop`);
`flax_loop_injected` passes the numbers through `optax.inject_hyperparams` so the step compiles
once for all trials, the best a careful user of this style can do. The model is bnlab's own
Flax MLP, so the math is the same and only the way of driving it differs.
"""


import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from bench import peers_common as common
from bnlab import models


class TrainState(train_state.TrainState):
  batch_stats: dict


def make_model(spec, num_classes):
  hparams = {'bn_momentum': 0.9, 'bn_epsilon': 1e-5, 'init_scale': 1.0}
  return models.MLP(widths=tuple(spec['widths']), num_classes=num_classes, norm='batch',
                    activation='relu', bn_momentum=hparams['bn_momentum'],
                    bn_epsilon=hparams['bn_epsilon'], init_scale=hparams['init_scale'])


def _chain(learning_rate, b2):
  return optax.chain(optax.clip_by_global_norm(common.CLIP_NORM),
                     optax.adam(learning_rate, b1=0.9, b2=b2, eps=1e-8))


def create_train_state(model, features, lr, b2, injected):
  variables = model.init(jax.random.key(common.SEED), jnp.zeros((1, features)), train=False)
  tx = (optax.inject_hyperparams(_chain)(learning_rate=lr, b2=b2) if injected
        else _chain(lr, b2))
  return TrainState.create(apply_fn=model.apply, params=variables['params'], tx=tx,
                           batch_stats=variables['batch_stats'])


@jax.jit
def train_step(state, x, y):
  def loss_fn(params):
    logits, updates = state.apply_fn({'params': params, 'batch_stats': state.batch_stats}, x,
                                     train=True, mutable=['batch_stats'])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates
  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=updates['batch_stats'])
  return state, loss


@jax.jit
def eval_step(state, x, y):
  logits = state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats}, x,
                          train=False)
  return jnp.mean(jnp.argmax(logits, -1) == y)


def train_trial(model, arrays, orders, lr, b2, injected):
  """One trial to its last epoch; returns the final validation accuracy (a host float)."""
  state = create_train_state(model, arrays['x_train'].shape[1], lr, b2, injected)
  for order in orders:
    for idx in order:
      state, _ = train_step(state, arrays['x_train'][idx], arrays['y_train'][idx])
    val = float(eval_step(state, arrays['x_val'], arrays['y_val']))  # Host sync per epoch.
  eval_step(state, arrays['x_test'], arrays['y_test']).block_until_ready()
  return val


def flax_loop(spec, arrays, num_classes, n, max_trials, injected):
  model = make_model(spec, num_classes)
  orders = common.epoch_orders(len(arrays['y_train']), spec['epochs'])
  seconds, accuracies = [], []
  for lr, b2 in common.settings(n)[:max_trials]:
    start = common.Timer()
    accuracies.append(train_trial(model, arrays, orders, lr, b2, injected))
    seconds.append(start())
  return {'trial_seconds': seconds, 'trials_run': len(seconds),
          **common.accuracy_summary(accuracies)}


def main():
  args, spec, arrays, num_classes = common.peer_args(('flax_loop', 'flax_loop_injected'))
  record = flax_loop(spec, arrays, num_classes, args.n, args.max_trials,
                     injected=args.system == 'flax_loop_injected')
  common.emit({'system': args.system, 'n': args.n, 'jax': jax.__version__, **record})


if __name__ == '__main__':
  main()
