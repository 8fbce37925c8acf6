"""The report's figures, each drawn with matplotlib and returned as PNG bytes.

Axes follow the spec a field was sampled from: log-uniform fields on a log axis, one-minus-log
fields as 1 - x on a log axis, categorical ones at evenly spaced positions. Colour means the
metric (bright is better); trials that diverged or stopped early are drawn faint.
"""

import io
import math

import matplotlib
from matplotlib import collections as mcollections
from matplotlib import ticker
import matplotlib.tri
import matplotlib.pyplot as plt
import numpy as np

from bnlab import report
from bnlab.reporting import sweepfiles

matplotlib.use('Agg')
FAINT = {'color': '0.6', 'alpha': 0.35, 'linestyle': '--', 'linewidth': 0.8}


def png(fig):
  """The figure as PNG bytes; the figure is closed."""
  out = io.BytesIO()
  fig.tight_layout()
  report.save_png(fig, out)
  return out.getvalue()


def scored(results, metric):
  """Trials that count: not diverged, finite metric."""
  return [r for r in results if r['status'] != 'diverged' and math.isfinite(r[metric])]


def colour_map(results, metric, mode):
  """(cmap, norm) over the trials' finite metric values; bright is better."""
  values = [r[metric] for r in scored(results, metric)] or [0.0, 1.0]
  cmap = plt.get_cmap('viridis' if mode == 'max' else 'viridis_r')
  lo, hi = min(values), max(values)
  return cmap, matplotlib.colors.Normalize(lo, hi if hi > lo else lo + 1e-9)


def metric_vs(field, spec, results, metric):
  """The metric against one swept field (report.plot_metric_vs, into bytes)."""
  out = io.BytesIO()
  report.plot_metric_vs(out, field, spec, results, metric)
  return out.getvalue()


def curves(results, metric, mode, top=8):
  """Learning curves: the top trials in colour, every other one faint."""
  curve = metric if metric in sweepfiles.SCALARS else 'val_accuracy'
  best = report.ranked([r for r in results if r['status'] == sweepfiles.FINISHED], metric,
                       mode)[:top]
  fig, ax = plt.subplots(figsize=(6.5, 4))
  top_ids = {id(r) for r in best}
  faint = [[(h['epoch'], h[curve]) for h in r['history']]
           for r in results if id(r) not in top_ids and r['history']]
  # One artist for them all: 1,024 separate lines took 0.8 s to draw, this 0.1 s.
  ax.add_collection(mcollections.LineCollection(faint, **FAINT))
  for r in best:
    ax.plot([h['epoch'] for h in r['history']], [h[curve] for h in r['history']], marker='.',
            label=f'trial {r["trial"]}')
  ax.plot([], [], **FAINT, label='other trials (pruned, diverged, partial: faint)')
  ax.autoscale_view()
  ax.set(xlabel='epoch', ylabel=curve, title=f'learning curves, top {len(best)} in colour')
  ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
  # Where rising (max) or falling (min) curves leave room: 'best' does not see the collection.
  ax.legend(fontsize=7, loc='lower right' if mode == 'max' else 'upper right')
  ax.grid(alpha=0.3)
  return png(fig)


def position(spec, value):
  """Where a value sits on its parallel axis, in [0, 1] (the spec's own scale)."""
  if spec.is_numeric:
    return min(max(spec.quantile(value), 0.0), 1.0)
  labels = [str(v) for v in spec.args]
  return labels.index(str(value)) / max(len(labels) - 1, 1) if str(value) in labels else 0.5


def _axis_ticks(spec):
  if spec.is_numeric:
    return [(u, f'{spec.value(u):.4g}') for u in (0.0, 0.5, 1.0)]
  return [(position(spec, v), str(v).replace(' ', '')) for v in spec.args]


def parallel(results, specs, metric, mode):
  """Parallel coordinates: one line per trial through every swept field and the metric."""
  fields = list(specs)
  cmap, norm = colour_map(results, metric, mode)
  good = scored(results, metric)
  good_ids = {id(r) for r in good}
  lines, colours = [], []
  for r in sorted(good, key=lambda r: r[metric] * (1 if mode == 'max' else -1)):
    ys = [position(specs[f], r['setting'][f]) for f in fields] + [norm(r[metric])]
    lines.append(list(enumerate(ys)))
    colours.append(cmap(norm(r[metric])))
  faint = [list(enumerate([position(specs[f], r['setting'][f]) for f in fields]))
           for r in results if id(r) not in good_ids and r['setting']]
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
         title=f'{len(good)} trials by {metric}; grey dashed: diverged or no metric')
  ax.title.set_fontsize(10)
  fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
  return png(fig)


def _coordinates(spec, values):
  """Plot positions, an axis-label prefix, the axis scale, and positions -> interpolation space."""
  xs, prefix, scale = report._x_values(spec, values)  # pylint: disable=protected-access
  xs = np.asarray(xs, np.float64)
  return xs, prefix, scale, (np.log10(xs) if scale == 'log' else xs)


def _label_axis(ax, which, field, spec, prefix, scale):
  if scale == 'categorical':
    getattr(ax, f'set_{which}ticks')(range(len(spec.args)),
                                     [str(v).replace(' ', '') for v in spec.args], fontsize=7)
    getattr(ax, f'set_{which}lim')(-0.5, len(spec.args) - 0.5)
  else:
    getattr(ax, f'set_{which}scale')(scale)
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


def contour(results, specs, pair, metric, mode):
  """The metric over the plane of two fields (contour or heat map), and the trials on it."""
  good = scored(results, metric)
  cmap, norm = colour_map(results, metric, mode)
  coords = [_coordinates(specs[f], [r['setting'][f] for r in good]) for f in pair]
  z = np.asarray([r[metric] for r in good])
  fig, ax = plt.subplots(figsize=(6, 4.5))
  _background(ax, [specs[f] for f in pair], coords, z, cmap, norm)
  ax.scatter(coords[0][0], coords[1][0], c=z, cmap=cmap, norm=norm, edgecolors='k',
             linewidths=0.5, s=28, zorder=3)
  for which, field, (_, prefix, scale, _) in zip('xy', pair, coords):
    _label_axis(ax, which, field, specs[field], prefix, scale)
  ax.set_title(f'{metric} over its two most important fields', fontsize=10)
  fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
  return png(fig)


def importance_bars(scores, trials):
  """Horizontal bars of {field: importance}, most important on top; `trials` says which fed it."""
  fields = list(scores)[::-1]
  fig, ax = plt.subplots(figsize=(6, 0.7 + 0.45 * len(fields)))
  ax.barh(fields, [scores[f] for f in fields], color='tab:blue')
  for i, f in enumerate(fields):
    ax.text(scores[f], i, f' {scores[f]:.3f}', va='center', fontsize=8)
  ax.set(xlabel='fANOVA importance (share of the metric variance)', xlim=(0, 1.15))
  ax.set_title(f'importance (Optuna fANOVA)\nover {trials}', fontsize=10)
  return png(fig)


def compare_metric(sweeps):
  """Two or more sweeps' metric: the empirical CDF and the best so far against trial index."""
  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
  metric = sweeps[0].metric
  for s in sweeps:
    values = np.sort([r[metric] for r in scored(s.results, metric)])
    left.step(values, np.arange(1, values.size + 1) / max(values.size, 1), where='post',
              label=f'{s.name} ({values.size} trials)')
    good = {r['trial']: r[metric] for r in scored(s.results, metric)}
    trials = sorted(good)
    pick = np.maximum.accumulate if s.mode == 'max' else np.minimum.accumulate
    right.plot(trials, pick([good[t] for t in trials]) if trials else [], label=s.name)
  left.set(xlabel=metric, ylabel='share of trials at or below', title='distribution of ' + metric)
  right.set(xlabel='trial', ylabel=f'best {metric} so far', title='best so far')
  for ax in (left, right):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  return png(fig)
