"""The PyTorch peers: Optuna driving a training loop trial by trial, and a torch.func ensemble.

    python bench/peers_torch.py --system=optuna_torch --workload=digits-3x128 --n=256 \
        --max_trials=8 --cache_dir=/tmp/bench
    python bench/peers_torch.py --system=torch_func --workload=digits-3x128 --n=64 ...

`optuna_torch` is what Optuna's PyTorch tutorial teaches (RandomSampler, one `objective(trial)`
per setting, a plain loop over batches, `trial.report` of the validation accuracy per epoch); it
runs `min(n, max_trials)` trials and reports each one's seconds, and run.py extrapolates to n.
Batches are taken by indexing tensors already in memory (faster than a DataLoader, so in the
peer's favour). `torch_func` stacks n models with `torch.func.stack_module_state` and trains
them with `vmap(grad(functional_call))`: the closest peer. BatchNorm's running statistics work
under vmap only because the buffers are stacked too (one set per member); vmapping over the
parameters with one shared set of buffers fails, and `limitation` records that error. torch.optim
takes one learning rate per parameter group, not one per member of a stacked tensor, so the
per-member Adam and global-norm clip are written out by hand here.
"""

import copy
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bench import peers_common as common  # pylint: disable=g-import-not-at-top

TRUNC_STD = 0.87962566103423978  # Std of a unit normal truncated to [-2, 2] (Flax's init).


def make_mlp(features, widths, num_classes):
  """Linear(no bias) -> BatchNorm1d -> ReLU per width, then a Linear head: bnlab's MLP."""
  layers, fan_in = [], features
  for width in widths:
    layers += [nn.Linear(fan_in, width, bias=False), nn.BatchNorm1d(width, momentum=0.1,
                                                                     eps=1e-5), nn.ReLU()]
    fan_in = width
  layers.append(nn.Linear(fan_in, num_classes))
  model = nn.Sequential(*layers)
  for layer in model:
    if isinstance(layer, nn.Linear):  # LeCun truncated normal, as Flax's variance_scaling(1).
      std = math.sqrt(1.0 / layer.in_features) / TRUNC_STD
      nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
      if layer.bias is not None:
        nn.init.zeros_(layer.bias)
  return model


def _tensors(arrays):
  return {k: torch.from_numpy(np.ascontiguousarray(v.astype(np.int64) if k.startswith('y') else v))
          for k, v in arrays.items()}


def accuracy(logits, labels):
  return (logits.argmax(-1) == labels).float().mean().item()


def optuna_torch(spec, arrays, num_classes, n, max_trials):
  """Optuna's tutorial loop; returns per-trial seconds and the trials' validation accuracies."""
  import optuna  # pylint: disable=import-outside-toplevel
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  t = _tensors(arrays)
  orders = [torch.from_numpy(o) for o in common.epoch_orders(len(arrays['y_train']),
                                                            spec['epochs'])]
  features = arrays['x_train'].shape[1]

  def objective(trial):
    lr = trial.suggest_float('learning_rate', 1e-4, 1e-1, log=True)
    one_minus_b2 = trial.suggest_float('one_minus_b2', 1e-3, 1e-1, log=True)
    torch.manual_seed(common.SEED)
    model = make_mlp(features, spec['widths'], num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 1 - one_minus_b2), eps=1e-8)
    for epoch, order in enumerate(orders):
      model.train()
      for idx in order:
        loss = F.cross_entropy(model(t['x_train'][idx]), t['y_train'][idx])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), common.CLIP_NORM)
        opt.step()
      model.eval()
      with torch.no_grad():
        val = accuracy(model(t['x_val']), t['y_val'])
      trial.report(val, epoch)
    with torch.no_grad():
      trial.set_user_attr('test_accuracy', accuracy(model(t['x_test']), t['y_test']))
    return val

  study = optuna.create_study(direction='maximize',
                              sampler=optuna.samplers.RandomSampler(seed=common.SEED))
  seconds = []
  for _ in range(min(n, max_trials)):
    start = common.Timer()
    study.optimize(objective, n_trials=1)
    seconds.append(start())
  return {'trial_seconds': seconds, 'trials_run': len(seconds),
          **common.accuracy_summary([tr.value for tr in study.trials])}


def bn_running_stats_under_vmap(features, widths, num_classes):
  """What torch.func cannot do: train-mode BN when the buffers are not stacked per member.

  With stacked buffers (what this peer uses) torch 2.13 updates each member's running averages
  under vmap; sharing one set of buffers, as vmapping over the parameters alone does, fails.
  """
  models = [make_mlp(features, widths, num_classes) for _ in range(2)]
  params, _ = torch.func.stack_module_state(models)
  buffers = dict(models[0].named_buffers())
  base = copy.deepcopy(models[0]).to('meta')
  x = torch.zeros(4, features)
  try:
    torch.func.vmap(lambda p, b: torch.func.functional_call(base, (p, b), (x,)),
                    in_dims=(0, None))(params, buffers)
  except RuntimeError as e:  # The in-place running-average update of an unbatched buffer.
    return str(e).splitlines()[0][:200]
  return ''


def _adam_clip_step(params, grads, moments, step, lr, b2):
  """Per-member Adam (b1 0.9, eps 1e-8) after a per-member global-norm clip, in place."""
  norm = torch.sqrt(sum(g.pow(2).flatten(1).sum(1) for g in grads.values()))
  scale = torch.clamp(common.CLIP_NORM / (norm + 1e-6), max=1.0)
  for k, g in grads.items():
    shape = (-1,) + (1,) * (g.ndim - 1)
    g = g * scale.view(shape)
    m, v = moments[k]
    m.mul_(0.9).add_(g, alpha=0.1)
    v.mul_(b2.view(shape)).addcmul_(g, g * (1 - b2.view(shape)))
    m_hat = m / (1 - 0.9 ** step)
    v_hat = v / (1 - b2.view(shape) ** step)
    params[k].sub_(lr.view(shape) * m_hat / (v_hat.sqrt() + 1e-8))


def torch_func(spec, arrays, num_classes, n):
  """n stacked members trained by vmap(grad(functional_call)); returns epoch seconds etc."""
  from torch.func import functional_call, grad_and_value, stack_module_state, vmap  # pylint: disable=import-outside-toplevel
  t = _tensors(arrays)
  features = arrays['x_train'].shape[1]
  limitation = bn_running_stats_under_vmap(features, spec['widths'], num_classes)
  models = []
  for _ in range(n):
    torch.manual_seed(common.SEED)  # Members share the init, as in bnlab.
    models.append(make_mlp(features, spec['widths'], num_classes))
  params, buffers = stack_module_state(models)
  params = {k: p.detach() for k, p in params.items()}
  base = copy.deepcopy(models[0]).to('meta')
  lr, b2 = (torch.tensor(v, dtype=torch.float32) for v in zip(*common.settings(n)))
  moments = {k: (torch.zeros_like(p), torch.zeros_like(p)) for k, p in params.items()}

  def loss_fn(p, b, x, y):
    return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

  grad_fn = vmap(grad_and_value(loss_fn), in_dims=(0, 0, None, None))
  forward = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, None))
  epoch_seconds, step = [], 0
  orders = common.epoch_orders(len(arrays['y_train']), spec['epochs'])
  for order in orders:
    start = common.Timer()
    base.train()
    for idx in torch.from_numpy(order):
      step += 1
      grads, _ = grad_fn(params, buffers, t['x_train'][idx], t['y_train'][idx])
      with torch.no_grad():
        _adam_clip_step(params, grads, moments, step, lr, b2)
    base.eval()  # Running averages at evaluation, as bnlab.
    with torch.no_grad():
      val = (forward(params, buffers, t['x_val']).argmax(-1) == t['y_val']).float().mean(1)
    epoch_seconds.append(start())
  return {'epoch_seconds': epoch_seconds, 'limitation': limitation,
          **common.accuracy_summary(val.numpy())}


def main():
  args, spec, arrays, num_classes = common.peer_args(('optuna_torch', 'torch_func'))
  if args.system == 'optuna_torch':
    record = optuna_torch(spec, arrays, num_classes, args.n, args.max_trials)
  else:
    record = torch_func(spec, arrays, num_classes, args.n)
  common.emit({'system': args.system, 'n': args.n, 'torch': torch.__version__,
               'threads': torch.get_num_threads(), **record})


if __name__ == '__main__':
  main()
