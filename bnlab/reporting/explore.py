"""explore.html: the sweep as interactive Plotly figures, in one self-contained offline page.

    parallel coordinates   one line per trial through every swept field and the metric; drag
                           along an axis to brush (keep only the trials in that range)
    metric vs each field   hover on a point for its trial id and whole setting; categorical
                           fields as box plots with every trial's point jittered beside its box
    learning curves        one line per trial, zoomable; hover names the trial and its setting

Axes follow the spec a field was sampled from, as the static report's do (figures.axis_values):
log-uniform fields on a log10 axis, one-minus-log fields as 1 - x on one, categorical fields as
integer codes labelled with their values. Plotly's JavaScript is embedded once (as Optuna's own
visualisations do), so the page needs no network; plotly is imported only when a page is written.
"""

import html
import math
import os
from typing import Any

from bnlab import files
from bnlab import lazy
from bnlab import records
from bnlab import space
from bnlab.records import TrialRecord
from bnlab.reporting import figures
from bnlab.reporting import sweepfiles

EXPLORE_FILE = 'explore.html'
TOP = 10  # Learning curves drawn in colour, each named in the legend; the others grey.
FONT = {'size': 13}  # Tick labels readable at 1400 px.
STATUS_COLOURS = {records.OK: '#1f77b4', records.PRUNED: '#ff7f0e', records.STOPPED: '#17becf',
                  records.PARTIAL: '#7f7f7f',
                  records.TRAINED: '#2ca02c'}
STYLE = ('body{font-family:sans-serif;margin:1.5em;max-width:1400px}'
         '.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}'
         '.grid>div{min-width:0}p.note{color:#444}')


def _go() -> Any:
  """plotly.graph_objects, imported on first use: a run that writes no page never pays it."""
  return lazy.import_module('plotly.graph_objects')


def tick_text(value: float) -> str:
  """A tick label short enough for a narrow axis: 0.001, 0.25, 3e-05 -> '3e-5'."""
  if value == 0 or 1e-3 <= abs(value) < 1e4:
    return f'{value:g}'
  mantissa, exponent = f'{value:.0e}'.split('e')
  return f'{mantissa}e{int(exponent)}'


def log_ticks(lo: float, hi: float) -> list[float]:
  """Tick values in [lo, hi] (positive) for a log axis: each decade, and 2 and 5 times it when
  the range spans under two decades, so a narrow range still gets several labels."""
  steps = (1, 2, 5) if math.log10(hi / lo) < 2 else (1,)
  ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
           for m in steps]
  inside = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
  return inside or [lo, hi]


def _bounds(spec: space.Spec) -> list[float]:
  """The spec's range as plotted positions (1 - x for one-minus-log)."""
  return figures.axis_values(spec, list(spec.args))[0]


def dimension(field: str, spec: space.Spec, values: list[Any]) -> dict[str, Any]:
  """One parallel-coordinates axis: positions on the spec's scale, with labelled ticks."""
  positions, prefix, scale = figures.axis_values(spec, values)
  if scale == 'categorical':
    return {'label': field, 'values': positions, 'range': [0, max(len(spec.args) - 1, 1)],
            'tickvals': list(range(len(spec.args))),
            'ticktext': [records.fmt(v) for v in spec.args]}
  if scale == 'log':
    lo, hi = sorted(_bounds(spec))
    ticks = log_ticks(lo, hi)
    return {'label': f'{prefix}{field} (log)', 'values': [math.log10(p) for p in positions],
            'range': [math.log10(lo), math.log10(hi)], 'tickvals': [math.log10(t) for t in ticks],
            'ticktext': [tick_text(t) for t in ticks]}
  return {'label': field, 'values': positions, 'range': sorted(_bounds(spec))}


def _shown(results: list[TrialRecord], specs: dict[str, space.Spec],
           metric: str) -> list[TrialRecord]:
  """Trials with a metric to place and every swept field (one seen only in progress.jsonl may
  lack some)."""
  return [r for r in results if r.scored(metric) and all(f in r.setting for f in specs)]


def parallel(sweep: sweepfiles.Sweep) -> Any:
  """Parallel coordinates over the swept fields, the status where trials differ in it, and the
  metric; lines coloured by the metric, bright is better."""
  go, metric = _go(), sweep.metric
  shown = _shown(sweep.results, sweep.specs, metric)
  dims = [dimension(f, s, [r.setting[f] for r in shown]) for f, s in sweep.specs.items()]
  statuses = sorted({r.status for r in shown})
  if len(statuses) > 1:  # Halving's pruned trials next to its finished ones: brush either.
    dims.append({'label': 'status', 'values': [statuses.index(r.status) for r in shown],
                 'tickvals': list(range(len(statuses))), 'ticktext': statuses})
  values = [r.value(metric) for r in shown]
  dims.append({'label': metric, 'values': values})
  line = {'color': values, 'colorscale': 'Viridis', 'reversescale': sweep.mode == 'min',
          'showscale': True, 'colorbar': {'title': {'text': metric}}}
  fig = go.Figure(go.Parcoords(dimensions=dims, line=line, labelfont={'size': 14},
                               tickfont=FONT, rangefont={'size': 11},
                               labelangle=-12 if len(dims) > 6 else 0))
  fig.update_layout(height=520, margin={'l': 90, 'r': 60, 't': 90, 'b': 40},
                    title=f'{records.count(len(shown), "trial")} with a {metric}; drag along '
                          'an axis to keep a range, click the range to clear it')
  return fig


def hover(r: TrialRecord, specs: dict[str, space.Spec], metric: str) -> str:
  """A trial's hover label: id and status, its whole setting, its metric (Plotly reads it as
  HTML, so the values are escaped)."""
  lines = [f'{f} = {records.fmt(r.setting[f])}' for f in specs if f in r.setting]
  lines.append(f'{metric} = {records.fmt(r.value(metric))}')
  return f'<b>trial {r.trial}</b> ({html.escape(r.status)})<br>' + '<br>'.join(
      html.escape(line) for line in lines)


def _by_status(trials):
  out = {}
  for r in trials:
    out.setdefault(r.status, []).append(r)
  return out


def metric_vs(sweep: sweepfiles.Sweep, field: str) -> Any:
  """The metric against one field: a scatter (a trace per status) on the field's sampling
  scale, or for a categorical field a box per value with every point beside it."""
  go, metric, spec = _go(), sweep.metric, sweep.specs[field]
  shown = [r for r in sweep.results if r.scored(metric) and field in r.setting]
  fig = go.Figure()
  for status, trials in _by_status(shown).items():
    x, _, scale = figures.axis_values(spec, [r.setting[field] for r in trials])
    common = {'y': [r.value(metric) for r in trials], 'name': status,
              'hovertext': [hover(r, sweep.specs, metric) for r in trials],
              'hovertemplate': '%{hovertext}<extra></extra>',
              'marker': {'color': STATUS_COLOURS.get(status, '#9467bd'), 'size': 7}}
    if scale == 'categorical':
      labels = [records.fmt(v) for v in spec.args]
      fig.add_trace(go.Box(x=[labels[i] for i in x], boxpoints='all', jitter=0.6, pointpos=0,
                           **common))
    else:
      fig.add_trace(go.Scatter(x=x, mode='markers', **common))
  _, prefix, scale = figures.axis_values(spec, [])
  xaxis = {'title': {'text': prefix + field + (' (log scale)' if scale == 'log' else '')},
           'tickfont': FONT, 'exponentformat': 'e'}  # 1e-4, not Plotly's SI '100μ'.
  if scale == 'categorical':
    xaxis.update(type='category', categoryorder='array',
                 categoryarray=[records.fmt(v) for v in spec.args])
  else:
    xaxis['type'] = scale
  fig.update_layout(title=f'{metric} vs {field}', xaxis=xaxis, boxmode='group',
                    yaxis={'title': {'text': metric}, 'tickfont': FONT}, height=420,
                    legend={'title': {'text': 'status'}}, margin={'t': 50})
  return fig


def _curve_trace(sweep: sweepfiles.Sweep, trials: list[TrialRecord], curve: str,
                 **style: Any) -> Any:
  """One Scatter trace of many trials' curves: their epochs joined, a gap (None) between two
  trials, each point's hover naming its trial and setting."""
  x, y, hovers = [], [], []
  for r in trials:
    x += [h['epoch'] for h in r.history] + [None]
    y += [h.get(curve) for h in r.history] + [None]
    hovers += [hover(r, sweep.specs, sweep.metric)] * (len(r.history) + 1)
  return _go().Scatter(x=x, y=y, mode='lines+markers', hovertext=hovers, **style,
                       hovertemplate=f'epoch %{{x}}: {curve} %{{y:.4g}}<br>%{{hovertext}}'
                                     '<extra></extra>')


def curves(sweep: sweepfiles.Sweep) -> Any:
  """Learning curves, one line per trial: the TOP ranked in colour with their setting in the
  legend, the others grey (one trace per status, so each can be hidden from the legend)."""
  go, metric = _go(), sweep.metric
  curve = metric if metric in records.SCALARS else 'val_accuracy'
  ok = [r for r in sweep.results if r.status == records.OK]
  top = records.ranked(ok, metric, sweep.mode)[:TOP]
  fig, chosen = go.Figure(), {r.trial for r in top}
  others = [r for r in sweep.results if r.trial not in chosen and r.history]
  for status, trials in _by_status(others).items():
    label = f'ok below #{len(top)}' if status == records.OK else status
    fig.add_trace(_curve_trace(sweep, trials, curve, name=f'{label} ({len(trials)})',
                               legendrank=1000, marker={'size': 3},
                               line={'color': 'rgba(120,120,120,0.35)', 'width': 1}))
  for rank, r in enumerate(top, 1):  # Drawn last, so on top of the grey ones.
    setting = ', '.join(f'{f.split(".")[-1]}={records.fmt(v)}' for f, v in r.setting.items())
    fig.add_trace(_curve_trace(sweep, [r], curve, name=f'#{rank} trial {r.trial}: {setting}',
                               legendrank=rank))
  epochs = max((h['epoch'] for r in sweep.results for h in r.history), default=1)
  fig.update_layout(title=f'{curve} per epoch: the top {len(top)} by {metric} in colour; drag '
                          'to zoom, double-click to reset', height=560 + 22 * len(fig.data),
                    # Whole epochs only: Plotly's own step would put 0.5 between two epochs.
                    xaxis={'title': {'text': 'epoch'}, 'tickfont': FONT, 'tick0': 1,
                           'dtick': max(1, round(epochs / 15))},
                    yaxis={'title': {'text': curve}, 'tickfont': FONT}, hovermode='closest',
                    # Below the plot, so that long settings do not narrow it.
                    legend={'font': {'size': 12}, 'orientation': 'h', 'yanchor': 'top',
                            'y': -0.12, 'entrywidth': 0.5, 'entrywidthmode': 'fraction'})
  return fig


def make_figures(sweep: sweepfiles.Sweep) -> dict[str, Any]:
  """{key: Plotly figure} of one sweep in page order: 'parallel' (where fields are swept), one
  'vs <field>' per swept field, 'curves'."""
  out = {'parallel': parallel(sweep)} if sweep.specs else {}
  out.update({f'vs {f}': metric_vs(sweep, f) for f in sweep.specs})
  out['curves'] = curves(sweep)
  return out


def _header(sweep: sweepfiles.Sweep) -> str:
  scored = sum(r.scored(sweep.metric) for r in sweep.results)
  counts = ', '.join(f'{n} {s}' for s, n in sweepfiles.counts(sweep.results).items())
  return (f'<h1>Explore: {html.escape(sweep.name)}</h1><p class="note">'
          f'{records.count(len(sweep.results), "trial")} ({html.escape(counts or "none yet")});'
          f' {scored} with a {html.escape(sweep.metric)} ({sweep.mode} is better) are plotted. '
          f'{html.escape(sweep.metric)} is each trial\'s value at its '
          f'{sweep.config["sweep"].get("select", "last")} epoch. Hover on a '
          'point for its trial and setting; click a legend entry to hide it.</p>')


def page(sweep: sweepfiles.Sweep) -> str:
  """The whole page: Plotly's JavaScript embedded once, with the first figure."""
  pio = lazy.import_module('plotly.io')
  divs = {key: pio.to_html(fig, full_html=False, include_plotlyjs=i == 0, default_width='100%',
                           config={'responsive': True, 'displaylogo': False})
          for i, (key, fig) in enumerate(make_figures(sweep).items())}
  section = lambda title, body: f'<h2>{html.escape(title)}</h2>{body}'
  parts = [section('Parallel coordinates', divs['parallel'])] if sweep.specs else []
  if sweep.specs:  # The per-field plots two abreast, as the static report's pairs.
    parts.append(section(f'{sweep.metric} vs each swept field', '<div class="grid">' + ''.join(
        f'<div>{divs[f"vs {f}"]}</div>' for f in sweep.specs) + '</div>'))
  parts.append(section('Learning curves', divs['curves']))
  return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Explore: '
          f'{html.escape(sweep.name)}</title><style>{STYLE}</style></head>\n<body>'
          f'{_header(sweep)}\n' + '\n'.join(parts) + '\n</body></html>\n')


def write(workdir: str, sweep: sweepfiles.Sweep) -> str:
  """Writes WORKDIR/explore.html (atomically) and returns its path."""
  path = os.path.join(workdir, EXPLORE_FILE)
  files.write_text(path, page(sweep))
  return path
