"""The report's figures, each drawn with matplotlib and returned as PNG bytes.

Axes follow the spec a field was sampled from: log-uniform fields on a log axis, one-minus-log
fields as 1 - x on a log axis, categorical ones at evenly spaced positions. Colour means the
metric (bright is better); trials that diverged or stopped early are drawn faint. Legends name a
trial by its setting ('#12 norm=layer, lr=3.2e-3'). Many trials'
lines are drawn as one LineCollection artist, not one Line2D each (BENCHMARKS.md, engine
change 10).
"""

import io
import os
from typing import Any

import matplotlib
from matplotlib import collections as mcollections
from matplotlib import ticker
import matplotlib.pyplot as plt
import matplotlib.tri
import numpy as np

from bnlab import pareto
from bnlab import records
from bnlab import space
from bnlab.records import TrialRecord
from bnlab.reporting import sweepfiles

if not os.environ.get('MPLBACKEND'):  # A notebook's kernel names its inline backend there.
  matplotlib.use('Agg')  # Figures are drawn to PNG bytes and closed: no window, any machine.
FAINT = {'color': '0.6', 'alpha': 0.35, 'linestyle': '--', 'linewidth': 0.8}
Specs = dict[str, space.Spec]


def png(fig: plt.Figure) -> bytes:
  """The figure as PNG bytes (laid out tight, 100 dpi); the figure is closed."""
  out = io.BytesIO()
  fig.tight_layout()
  fig.savefig(out, format='png', dpi=100)
  plt.close(fig)
  return out.getvalue()


def axis_values(spec: space.Spec, values: list[Any]) -> tuple[list[Any], str, str]:
  """Plot positions for a field's values, the axis label prefix, and the axis scale
  ('linear', 'log' or 'categorical': positions 0, 1, ... of the spec's values)."""
  if spec.scale == 'one_minus_log':
    return [1 - v for v in values], '1 - ', 'log'
  if spec.is_numeric:
    return values, '', 'log' if spec.scale == 'log' else 'linear'
  labels = [str(v) for v in spec.args]
  return [labels.index(str(v)) for v in values], '', 'categorical'


def _scored(results, metric):
  return [r for r in results if r.scored(metric)]


def colour_map(results: list[TrialRecord], metric: str,
               mode: str) -> tuple[matplotlib.colors.Colormap, matplotlib.colors.Normalize]:
  """(cmap, norm) over the trials' finite metric values; bright is better."""
  values = [r.value(metric) for r in _scored(results, metric)] or [0.0, 1.0]
  cmap = plt.get_cmap('viridis' if mode == 'max' else 'viridis_r')
  lo, hi = min(values), max(values)
  return cmap, matplotlib.colors.Normalize(lo, hi if hi > lo else lo + 1e-9)


def _having(results, fields):
  """The trials whose setting has every one of `fields` (a trial seen only in progress.jsonl
  may lack some)."""
  return [r for r in results if all(f in r.setting for f in fields)]


def metric_vs(field: str, spec: space.Spec, results: list[TrialRecord], metric: str) -> bytes:
  """The metric against one swept field, on the field's sampling scale."""
  shown = _having(_scored(results, metric), [field])
  x, prefix, scale = axis_values(spec, [r.setting[field] for r in shown])
  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.scatter(x, [r.value(metric) for r in shown], s=14, alpha=0.7)
  if scale == 'categorical':
    ax.set_xticks(range(len(spec.args)), [str(v) for v in spec.args], rotation=20, fontsize=7)
  else:
    set_scale(ax, 'x', scale, x)
  ax.set_xlabel(prefix + field + (' (log scale)' if scale == 'log' else ''))
  ax.set_ylabel(metric)
  ax.set_title(f'{metric} vs {field}')
  ax.grid(alpha=0.3)
  return png(fig)


def set_scale(ax: Any, which: str, scale: str, values: Any) -> None:
  """Axis `which` ('x' or 'y') of `ax` on `scale`. A log axis over less than two decades gets its
  ticks at 1, 2 and 5 of each decade and no minor labels: matplotlib's own minor labels
  (2, 3, 4, 6 x 10^k) collide at 3 and 4 on a figure this small."""
  getattr(ax, f'set_{which}scale')(scale)
  values = np.asarray(values, float)
  values = values[np.isfinite(values) & (values > 0)]
  if scale == 'log' and values.size and np.log10(values.max() / values.min()) < 2:
    axis = getattr(ax, f'{which}axis')
    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.LogFormatterSciNotation(  # Labels every one of them.
        labelOnlyBase=False, minor_thresholds=(np.inf, np.inf)))
    axis.set_minor_formatter(ticker.NullFormatter())


# Short names of common fields in legends; any other field by its last dotted part.
SHORT = {'optimizer.learning_rate': 'lr', 'model.bn_momentum': 'bn_mom'}
# What a faint curve's status means, for the legend (only the statuses present are named).
FAINT_STATUS = {records.OK: 'finished below the top', records.PRUNED: 'pruned',
                records.STOPPED: 'stopped early', records.DIVERGED: 'diverged',
                records.PARTIAL: 'still running or stopped',
                records.TRAINED: 'trained, not yet written'}
LABEL_FIELDS = 4  # Swept fields named in a legend entry; more end in '...'.


def short_number(value: Any) -> str:
  """A value for a legend: 3 significant digits (more where 3 would round 0.9997 to 1), small
  and large floats as 3.2e-3."""
  if not isinstance(value, float):
    return records.fmt(value)
  if value == 0 or 1e-2 <= abs(value) < 1e4:
    digits = 3
    while digits < 6 and float(f'{value:.{digits}g}') == round(value) != value:
      digits += 1
    return f'{value:.{digits}g}'
  mantissa, exponent = f'{value:.1e}'.split('e')
  return f'{mantissa}e{int(exponent)}'


def trial_label(record: TrialRecord, fields: list[str]) -> str:
  """'#12 norm=layer, lr=3.2e-3': the trial and its setting of the first swept fields."""
  shown = [f for f in fields if f in record.setting][:LABEL_FIELDS]
  parts = [f'{SHORT.get(f, f.rsplit(".", 1)[-1])}={short_number(record.setting[f])}'
           for f in shown]
  more = ', ...' if len([f for f in fields if f in record.setting]) > LABEL_FIELDS else ''
  return f'#{record.trial} ' + ', '.join(parts) + more if parts else f'#{record.trial}'


def _faint_label(others):
  return 'faint: ' + ', '.join(FAINT_STATUS.get(s, s) for s in sweepfiles.counts(others))


def _fit_y(ax, best, curve):
  """The y-range of the coloured curves (padded): a faint trial stopped after one epoch, far
  below, would otherwise squash them."""
  ys = [h[curve] for r in best for h in r.history if np.isfinite(h[curve])]
  if ys:
    pad = (max(ys) - min(ys)) * 0.08 or 0.01
    ax.set_ylim(min(ys) - pad, max(ys) + pad)


def draw_curves(ax: plt.Axes, results: list[TrialRecord], metric: str, mode: str,
                fields: list[str] = (), top: int = 8) -> None:
  """Learning curves on `ax`: the top finished trials in colour (each labelled by its setting of
  the swept `fields`), every other one faint; one-epoch trials as faint points."""
  curve = metric if metric in records.SCALARS else 'val_accuracy'
  best = records.ranked([r for r in results if r.status == records.OK], metric, mode)[:top]
  top_ids = {id(r) for r in best}
  others = [r for r in results if id(r) not in top_ids and r.history]
  faint = [[(h['epoch'], h[curve]) for h in r.history] for r in others if len(r.history) > 1]
  ax.add_collection(mcollections.LineCollection(faint, **FAINT))  # One artist for them all.
  points = [(r.history[0]['epoch'], r.history[0][curve]) for r in others if len(r.history) == 1]
  if points:
    ax.plot(*zip(*points), linestyle='none', marker='.', color='0.6', alpha=0.35)
  for r in best:
    ax.plot([h['epoch'] for h in r.history], [h[curve] for h in r.history], marker='.',
            label=trial_label(r, list(fields)))
  if others:
    ax.plot([], [], **FAINT, label=_faint_label(others))
  ax.autoscale_view()
  _fit_y(ax, best, curve)
  ax.set(xlabel='epoch', ylabel=curve, title=f'learning curves, top {len(best)} in colour'
         + (' (y-range fits them)' if best and others else ''))
  ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
  ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0))  # Beside: hides no curve.
  ax.grid(alpha=0.3)


def curves(results: list[TrialRecord], metric: str, mode: str, fields: list[str] = (),
           top: int = 8) -> bytes:
  """`draw_curves` as a PNG."""
  fig, ax = plt.subplots(figsize=(9, 4))
  draw_curves(ax, results, metric, mode, fields, top)
  return png(fig)


def scheduled_fields(results: list[TrialRecord], specs: Specs) -> list[str]:
  """The swept fields that the trials' history rows carry: hyperparameters that change during
  training (PBT's schedules), where other strategies' rows hold metrics alone."""
  carried = {f for r in results for row in r.history for f in row}
  return [f for f in specs if f in carried]


def schedules(results: list[TrialRecord], specs: Specs, fields: list[str], metric: str,
              mode: str, top: int = 5) -> bytes:
  """Each of `fields` over epochs, one line per trial (the top ones by `metric` in colour)."""
  best = {r.trial for r in records.ranked(results, metric, mode)[:top]}
  fig, axes = plt.subplots(len(fields), 1, figsize=(6, 2.6 * len(fields)), squeeze=False)
  for ax, field in zip(axes[:, 0], fields):
    for r in results:
      rows = [h for h in r.history if field in h]
      y, prefix, scale = axis_values(specs[field], [h[field] for h in rows])
      style = ({'lw': 1.6, 'label': f'trial {r.trial}'} if r.trial in best
               else {'lw': 0.6, 'color': 'gray', 'alpha': 0.4})
      ax.step([h['epoch'] for h in rows], y, where='post', **style)
    ax.set_yscale(scale if scale != 'categorical' else 'linear')
    ax.set_ylabel(prefix + field, fontsize=8)
    ax.grid(alpha=0.3)
  axes[0, 0].set_title(f'PBT hyperparameter schedules (top {top} by {metric} in color)')
  axes[0, 0].legend(fontsize=7)
  axes[-1, 0].set_xlabel('epoch')
  return png(fig)


def position(spec: space.Spec, value: Any) -> float:
  """Where a value sits on its parallel axis, in [0, 1] (the spec's own scale)."""
  if spec.is_numeric:
    return min(max(spec.quantile(value), 0.0), 1.0)
  labels = [str(v) for v in spec.args]
  return labels.index(str(value)) / max(len(labels) - 1, 1) if str(value) in labels else 0.5


def _axis_ticks(spec):
  if spec.is_numeric:
    return [(u, f'{spec.value(u):.4g}') for u in (0.0, 0.5, 1.0)]
  return [(position(spec, v), str(v).replace(' ', '')) for v in spec.args]


def parallel(results: list[TrialRecord], specs: Specs, metric: str, mode: str) -> bytes:
  """Parallel coordinates: one line per trial through every swept field and the metric."""
  fields = list(specs)
  cmap, norm = colour_map(results, metric, mode)
  good = _having(_scored(results, metric), fields)
  good_ids = {id(r) for r in good}
  lines, colours = [], []
  for r in sorted(good, key=lambda r: records.oriented(r.value(metric), mode)):
    ys = [position(specs[f], r.setting[f]) for f in fields] + [norm(r.value(metric))]
    lines.append(list(enumerate(ys)))
    colours.append(cmap(norm(r.value(metric))))
  faint = [list(enumerate([position(specs[f], r.setting[f]) for f in fields]))
           for r in _having(results, fields) if id(r) not in good_ids and r.setting]
  fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * (len(fields) + 1)), 4.2))
  ax.add_collection(mcollections.LineCollection(faint, **FAINT))
  ax.add_collection(mcollections.LineCollection(lines, colors=colours, linewidths=1.2))
  for i, field in enumerate(fields):
    ax.axvline(i, color='k', linewidth=0.8)
    for y, label in _axis_ticks(specs[field]):
      ax.text(i + 0.03, y, label, fontsize=7, va='center')
  ax.axvline(len(fields), color='k', linewidth=0.8)
  for y in (0.0, 0.5, 1.0):
    ax.text(len(fields) + 0.03, y, f'{norm.inverse(y):.4g}', fontsize=7, va='center')
  ax.set_xticks(range(len(fields) + 1),
                fields + [metric], rotation=15, fontsize=8)
  ax.set(xlim=(-0.1, len(fields) + 0.5), ylim=(-0.05, 1.05), yticks=[],
         title=f'{records.count(len(good), "trial")} by {metric}; '
               'grey dashed: diverged or no metric')
  ax.title.set_fontsize(10)
  fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
  return png(fig)


def _coordinates(spec, values):
  """Plot positions, an axis-label prefix, the axis scale, and positions -> interpolation space."""
  xs, prefix, scale = axis_values(spec, values)
  xs = np.asarray(xs, np.float64)
  return xs, prefix, scale, (np.log10(xs) if scale == 'log' else xs)


def _label_axis(ax, which, field, spec, prefix, scale, values):
  if scale == 'categorical':
    getattr(ax, f'set_{which}ticks')(range(len(spec.args)),
                                     [str(v).replace(' ', '') for v in spec.args], fontsize=7)
    getattr(ax, f'set_{which}lim')(-0.5, len(spec.args) - 0.5)
  else:
    set_scale(ax, which, scale, values)
  getattr(ax, f'set_{which}label')(prefix + field + (' (log scale)' if scale == 'log' else ''))


def _cell_means(x, y, z, nx, ny):
  """Mean metric per (x, y) category cell, NaN where no trial landed."""
  total, count = np.zeros((ny, nx)), np.zeros((ny, nx))
  np.add.at(total, (y.astype(int), x.astype(int)), z)
  np.add.at(count, (y.astype(int), x.astype(int)), 1)
  return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _background(ax, fields, coords, z, cmap, norm):
  """Interpolated contours when both fields are numeric, cell means when both categorical."""
  (x, _, sx, tx), (y, _, sy, ty) = coords
  if sx == sy == 'categorical':
    nx, ny = (len(fields[0].args), len(fields[1].args))
    ax.imshow(_cell_means(x, y, z, nx, ny), origin='lower', cmap=cmap, norm=norm, aspect='auto',
              extent=(-0.5, nx - 0.5, -0.5, ny - 0.5))
    return
  if 'categorical' in (sx, sy):
    return  # Interpolating across categories would invent values: the trials alone.
  try:  # Linear interpolation over the trials' convex hull, in the fields' sampling scale.
    gx, gy = np.meshgrid(np.linspace(tx.min(), tx.max(), 80), np.linspace(ty.min(), ty.max(), 80))
    # matplotlib's trapezoid-map lookup: the same values as scipy's griddata(method='linear'),
    # which took seconds for some sets of a few hundred trials (scipy 1.17's simplex search).
    gz = matplotlib.tri.LinearTriInterpolator(matplotlib.tri.Triangulation(tx, ty), z)(gx, gy)
    back = lambda g, scale: 10 ** g if scale == 'log' else g
    ax.contourf(back(gx, sx), back(gy, sy), gz, levels=12, cmap=cmap, norm=norm, alpha=0.75)
  except (ValueError, RuntimeError):
    pass  # Too few or collinear trials (qhull's RuntimeError): the points alone.


def contour(results: list[TrialRecord], specs: Specs, pair: list[str], metric: str,
            mode: str) -> bytes:
  """The metric over the plane of two fields (contour or heat map), and the trials on it."""
  good = _having(_scored(results, metric), pair)
  cmap, norm = colour_map(results, metric, mode)
  coords = [_coordinates(specs[f], [r.setting[f] for r in good]) for f in pair]
  z = np.asarray([r.value(metric) for r in good])
  fig, ax = plt.subplots(figsize=(6, 4.5))
  _background(ax, [specs[f] for f in pair], coords, z, cmap, norm)
  ax.scatter(coords[0][0], coords[1][0], c=z, cmap=cmap, norm=norm, edgecolors='k',
             linewidths=0.5, s=28, zorder=3)
  for which, field, (values, prefix, scale, _) in zip('xy', pair, coords):
    _label_axis(ax, which, field, specs[field], prefix, scale, values)
  ax.set_title(f'{metric} over its two most important fields', fontsize=10)
  fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
  return png(fig)


def importance_bars(scores: dict[str, float], trials: str) -> bytes:
  """Horizontal bars of {field: importance}, most important on top; `trials` says which fed it."""
  fields = list(scores)[::-1]
  fig, ax = plt.subplots(figsize=(6, 0.7 + 0.45 * len(fields)))
  ax.barh(fields, [scores[f] for f in fields], color='tab:blue')
  for i, f in enumerate(fields):
    ax.text(scores[f], i, f' {scores[f]:.3f}', va='center', fontsize=8)
  ax.set(xlabel='fANOVA importance (share of the metric variance)', xlim=(0, 1.15))
  ax.set_title(f'importance (Optuna fANOVA)\nover {trials}', fontsize=10)
  return png(fig)


def compare_metric(sweeps: list[sweepfiles.Sweep]) -> bytes:
  """Two or more sweeps' metric: the empirical CDF and the best so far against trial index."""
  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
  metric = sweeps[0].metric
  for s in sweeps:
    values = np.sort([r.value(metric) for r in _scored(s.results, metric)])
    left.step(values, np.arange(1, values.size + 1) / max(values.size, 1), where='post',
              label=f'{s.name} ({records.count(values.size, "trial")})')
    good = {r.trial: r.value(metric) for r in _scored(s.results, metric)}
    trials = sorted(good)
    pick = np.maximum.accumulate if s.mode == 'max' else np.minimum.accumulate
    right.plot(trials, pick([good[t] for t in trials]) if trials else [], label=s.name)
  left.set(xlabel=metric, ylabel='share of trials at or below', title='distribution of ' + metric)
  right.set(xlabel='trial', ylabel=f'best {metric} so far', title='best so far')
  for ax in (left, right):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  return png(fig)


def pareto_front(results: list[TrialRecord], objectives: tuple[pareto.Objective, ...]) -> bytes:
  """The first objective against each other one: every trial with a front as a dot, the front
  trials labelled by trial id and joined as a staircase (what a better trial must beat). With
  three or more objectives a trial off a panel's staircase may still be on the front."""
  points = pareto.values(results, objectives)
  fronts = pareto.front_ranks(points)
  others = objectives[1:]
  fig, axes = plt.subplots(1, len(others), figsize=(5.5 * len(others), 4.2), squeeze=False)
  first = objectives[0]
  for ax, other in zip(axes[0], others):
    x = np.array([r.value(other.metric) for r in results])
    y = np.array([r.value(first.metric) for r in results])
    ax.scatter(x[fronts > 1], y[fronts > 1], s=14, color='0.6', label='dominated')
    on = np.flatnonzero(fronts == 1)
    ax.scatter(x[on], y[on], s=28, color='C3', zorder=3, label='Pareto front')
    order = on[np.argsort(x[on] if other.mode == 'min' else -x[on])]
    ax.step(x[order], y[order], where='post', color='C3', linewidth=1)
    for i in on:
      ax.annotate(f'#{results[i].trial}', (x[i], y[i]), fontsize=7, xytext=(3, 3),
                  textcoords='offset points')
    if other.metric in ('param_count', 'flops_per_example'):
      ax.set_xscale('log')
    ax.set_xlabel(f'{other.metric} ({"lower" if other.mode == "min" else "higher"} is better)')
    ax.set_ylabel(f'{first.metric} ({"higher" if first.mode == "max" else "lower"} is better)')
    ax.legend(fontsize=8)
  return png(fig)
