"""report.html (self-contained: images as data: URIs) and report.md for one workdir, and the
side-by-side comparison of two. Everything is rebuilt from the workdir files alone.

    python -m bnlab.report WORKDIR                    # WORKDIR/report.html, report.md, plots/
    python -m bnlab.report WORKDIR --compare OTHER    # WORKDIR/compare_<OTHER name>.html
"""

import base64
import dataclasses
import html
import math
import os
import statistics
import time
from typing import Any

from bnlab import files
from bnlab import pareto
from bnlab import records
from bnlab import space
from bnlab import worker
from bnlab.records import TrialRecord
from bnlab.reporting import explore
from bnlab.reporting import figures
from bnlab.reporting import importance
from bnlab.reporting import sections
from bnlab.reporting import sweepfiles

TOP = 20  # Leaderboard rows.
PLOTS = 'plots'
REPORT_FILE = 'report.html'  # The page a finished run points to (sweep.where_to_look).
EXPLORE_LINK = ('<p><a href="explore.html">Explore the trials interactively</a>: parallel '
                'coordinates with brushing, every point\'s trial and setting on hover, zoomable '
                'learning curves (explore.html, one file, works offline).</p>\n')
STYLE = ('body{font-family:sans-serif;margin:1.5em;max-width:1400px}'
         'table{border-collapse:collapse;font-size:13px;margin:.5em 0}'
         'td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}'
         'th{background:#eee}img{max-width:100%;border:1px solid #ddd;margin:4px}'
         '.pair{display:grid;grid-template-columns:1fr 1fr;gap:1em}'
         '.pair>div{min-width:0;overflow-x:auto}pre{font-size:12px}')


@dataclasses.dataclass
class Page:
  """What a report shows of one sweep: its tables, text, and figures as (file name, title, PNG)."""
  sweep: sweepfiles.Sweep
  scores: dict[str, float]
  importance_note: str  # Why there are no scores, or which trials they are of ('' all).
  images: list[tuple[str, str, bytes]]


def leaderboard_rows(sweep: sweepfiles.Sweep, top: int = TOP) -> tuple[list[str], list[list[str]]]:
  """(header, rows) of the top trials with every metric and swept field (with sweep.objectives:
  by Pareto front, then the first objective; each trial's front and costs shown)."""
  objectives = ranked_objectives(sweep)
  metrics = [sweep.metric] + [m for m in records.METRICS if m != sweep.metric]
  metrics += [o.metric for o in objectives if o.metric not in metrics]
  fronts = pareto.ranks(sweep.results, objectives) if objectives else {}
  ranking = (pareto.ranked(sweep.results, objectives, fronts) if objectives
             else records.ranked(sweep.results, sweep.metric, sweep.mode))
  header = (['rank', 'trial', 'status'] + (['front'] if objectives else []) + metrics
            + ['epochs'] + list(sweep.specs))
  rows = [[str(i + 1), str(r.trial), r.status] + ([str(fronts[r.trial])] if objectives else [])
          + [records.fmt(r.value(m)) for m in metrics]
          + [str(r.epochs)] + [records.fmt(r.setting.get(f, '')) for f in sweep.specs]
          for i, r in enumerate(ranking[:top])]
  return header, rows


def ranked_objectives(sweep: sweepfiles.Sweep) -> tuple[pareto.Objective, ...]:
  """sweep.objectives where some trial has a front; () for one objective, and for a sweep still
  running (progress.jsonl has no costs: the leaderboard then goes by the sweep metric)."""
  objectives = sweep.objectives
  return objectives if objectives and pareto.has_front(sweep.results, objectives) else ()


def ranked_by(sweep: sweepfiles.Sweep) -> str:
  """What orders the leaderboard: the sweep metric, or the Pareto front and then the metric."""
  objectives = ranked_objectives(sweep)
  if not objectives:
    return sweep.metric
  names = ', '.join(f'{o.metric}:{o.mode}' for o in objectives)
  return f'Pareto front of {names}, then {sweep.metric}'


def ranked_epoch(sweep: sweepfiles.Sweep) -> str:
  """Which epoch's metric ranks the trials (sweep.select): 'last epoch' or 'best epoch'."""
  return f'{sweep.config["sweep"].get("select", "last")} epoch'


def summary_rows(sweep: sweepfiles.Sweep) -> list[tuple[str, str]]:
  """(label, value) lines: progress, best (the metric as of each trial's last epoch), timing and
  device."""
  ranked = records.ranked(sweep.results, sweep.metric, sweep.mode)
  good = [r.value(sweep.metric) for r in ranked]
  t = sweep.timing
  counts = ', '.join(f'{n} {s}' for s, n in sweepfiles.counts(sweep.results).items())
  strategy = sweep.config['sweep']['strategy']
  planned = records.count(sweep.config['sweep']['num_trials'], 'trial')
  if strategy == 'grid':  # The product's size; a conditional field multiplies only where active.
    planned = (('up to ' if space.conditional(sweep.specs) else '')
               + records.count(math.prod(len(s.args) for s in sweep.specs.values()), 'setting'))
  rows = [('sweep', f'{strategy} search of {planned} on {sweep.config["dataset"]["name"]}, '
                    f'{sweep.metric} ({sweep.mode})'),
          ('state', ('finished' if sweep.finished else 'running or stopped (from progress.jsonl)')
           + f': {records.count(len(sweep.results), "trial")} seen, {counts or "none yet"}'),
          ('metric', f'{sweep.metric} at each trial\'s {ranked_epoch(sweep)} (sweep.select; '
                     'results.csv\'s best_epoch says which epoch was best, test_accuracy is the '
                     'last epoch\'s)'),
          ('best', f'trial {ranked[0].trial}: {sweep.metric} {good[0]:.4f} '
                   f'({ranked_epoch(sweep)})' if ranked else 'none'),
          ('median', f'{statistics.median(good):.4f}' if good else 'none')]
  if t:
    rows += [('device', f'{t["device_count"]} x {t["device_kind"]} ({t["platform"]})'),
             ('time', f'{t["wall_seconds"]:.1f} s wall: {t["compile_seconds"]:.1f} s compiling '
                      f'{len(t["programs"])} programs, {t["train_seconds"]:.1f} s training '
                      f'({t["trial_epochs_per_second"]:.1f} trial-epochs/s)')]
    rows += [(f'program {i + 1}', f'{p["bucket"]}: {p["members"]} members, compiled in '
                                  f'{p["compile_seconds"]:.2f} s')
             for i, p in enumerate(t['programs'])]
  return rows


def importance_figures(results: list[TrialRecord], specs: dict[str, space.Spec], metric: str,
                       mode: str) -> tuple[dict[str, float], str, list[tuple[str, str, bytes]]]:
  """(scores, note, images): the importance, its chart and the contour over the two most
  important fields (or the first two numeric ones)."""
  scores, note = importance.importances(results, specs, metric, mode)
  images = []
  if scores:
    images.append(('importance.png', 'Importance chart',
                   figures.importance_bars(scores, note or 'the finished trials')))
  order = list(scores) or [f for f, s in specs.items() if s.is_numeric] + [
      f for f, s in specs.items() if not s.is_numeric]
  if len(order) >= 2 and any(r.scored(metric) for r in results):
    images.append(('contour.png', f'{metric} over {order[0]} and {order[1]}',
                   figures.contour(results, specs, order[:2], metric, mode)))
  return scores, note, images


def make_page(sweep: sweepfiles.Sweep) -> Page:
  """Computes the importance and draws every figure of one sweep: the importance's in the
  worker process (bnlab/worker.py), the others shared between it and this process."""
  metric, mode, specs, results = sweep.metric, sweep.mode, sweep.specs, sweep.results
  pending = worker.submit(importance_figures, results, specs, metric, mode)
  rest = [('parallel.png', 'Parallel coordinates', figures.parallel, (results, specs, metric,
                                                                      mode))] if specs else []
  rest += [(f'metric_vs_{f}.png', f'{metric} vs {f}', figures.metric_vs, (f, s, results, metric))
           for f, s in specs.items()]
  rest.append(('curves.png', 'Learning curves', figures.curves,
               (results, metric, mode, list(specs))))
  if ranked_objectives(sweep):
    rest.append(('pareto.png', 'Pareto front', figures.pareto_front,
                 (results, sweep.objectives)))
  scheduled = figures.scheduled_fields(results, specs)
  if scheduled:  # PBT: what its hyperparameters did over the epochs.
    rest.append(('pbt_schedules.png', 'PBT hyperparameter schedules', figures.schedules,
                 (results, specs, scheduled, metric, mode)))
  drawn = worker.share([(draw, args) for _, _, draw, args in rest])
  scores, note, images = pending()
  return Page(sweep, scores, note, images + [(name, title, png) for (name, title, _, _), png
                                             in zip(rest, drawn)])


def img(data: bytes, title: str) -> str:
  uri = 'data:image/png;base64,' + base64.b64encode(data).decode('ascii')
  return f'<figure><img src="{uri}" alt="{html.escape(title)}"></figure>'


def html_table(header: list[str], rows: list[Any], table_id: str = '') -> str:
  attr = f' id="{table_id}"' if table_id else ''
  head = ''.join(f'<th>{html.escape(h)}</th>' for h in header)
  head = f'<thead><tr>{head}</tr></thead>' if any(header) else ''  # A key-value table has none.
  body = ''.join('<tr>' + ''.join(f'<td>{html.escape(c)}</td>' for c in row) + '</tr>'
                 for row in rows)
  return f'<table{attr}>{head}<tbody>{body}</tbody></table>'


def _md_table(header, rows):
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  return '\n'.join(lines + ['| ' + ' | '.join(row) + ' |' for row in rows])


def _importance_rows(page):
  return [[f, f'{v:.3f}'] for f, v in page.scores.items()]


def _html_section(section: sections.Section, level: int = 3) -> str:
  return (f'<h{level}>{html.escape(section.title)}</h{level}>'
          + (f'<p>{html.escape(section.note)}</p>' if section.note else '')
          + html_table(section.header, section.rows))


def _md_section(section: sections.Section, level: int = 2) -> str:
  return '\n\n'.join([f'{"#" * level} {section.title}'] + ([section.note] if section.note else [])
                      + [_md_table(section.header, section.rows), ''])


def html_body(page: Page, images: bool = True) -> str:
  """The report of one sweep as an HTML fragment."""
  sweep = page.sweep
  tie = records.top_tie(sweep.results, sweep.metric, sweep.mode)
  parts = [f'<h2>{html.escape(sweep.name)}</h2>',
           html_table(['', ''], summary_rows(sweep), 'summary'),
           f'<h3>Leaderboard (top {TOP} by {html.escape(ranked_by(sweep))}, '
           f'{ranked_epoch(sweep)})</h3>',
           html_table(*leaderboard_rows(sweep), 'leaderboard')
           + (f'<p class="tie">{html.escape(tie)}.</p>' if tie else ''),
           '<h3>Hyperparameter importance</h3>',
           html_table(['field', 'fANOVA importance'], _importance_rows(page))
           + (f'<p>Over {html.escape(page.importance_note)}.</p>' if page.importance_note else '')
           if page.scores else f'<p>Not computed: {html.escape(page.importance_note)}.</p>']
  parts += [_html_section(s) for s in sections.strategy_sections(sweep)]
  if images:
    parts += [f'<h3>{html.escape(title)}</h3>' + img(data, title)
              for _, title, data in page.images]
    parts.append('<h3>Config</h3>' + ''.join(
        _html_section(s, 4) for s in sections.config_sections(sweep.config)))
  return '\n'.join(parts)


def html_page(title: str, body: str) -> str:
  return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
          f'<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n'
          f'<body><h1>{html.escape(title)}</h1>\n'
          f'<p>Rebuilt from the workdir files at {time.strftime("%Y-%m-%d %H:%M:%S")}.</p>\n'
          f'{body}\n</body></html>\n')


def markdown(page: Page) -> str:
  """report.md: the same tables, the figures linked from plots/."""
  sweep = page.sweep
  tie = records.top_tie(sweep.results, sweep.metric, sweep.mode)
  parts = [f'# Sweep report: {sweep.name}', '',
           '\n'.join(f'- **{k}**: {v}' for k, v in summary_rows(sweep)), '',
           f'## Leaderboard (top {TOP} by {ranked_by(sweep)}, {ranked_epoch(sweep)})', '',
           _md_table(*leaderboard_rows(sweep)) + (f'\n\n{tie}.' if tie else ''), '',
           '## Hyperparameter importance', '',
           _md_table(['field', 'fANOVA importance'], _importance_rows(page))
           + (f'\n\nOver {page.importance_note}.' if page.importance_note else '')
           if page.scores else f'Not computed: {page.importance_note}.', '']
  parts += [_md_section(s) for s in sections.strategy_sections(sweep)]
  parts += [f'## {title}\n\n![{title}]({PLOTS}/{name})\n' for name, title, _ in page.images]
  parts += ['## Config', ''] + [_md_section(s, 3) for s in sections.config_sections(sweep.config)]
  return '\n'.join(parts)


def build(workdir: str) -> str:
  """Writes WORKDIR/report.html, report.md and the figures in plots/; returns the html path."""
  page = make_page(sweepfiles.load(workdir))
  interactive = worker.submit(explore.page, page.sweep)  # Made there, written here (gs:// too).
  for name, _, data in page.images:
    files.write_bytes(os.path.join(workdir, PLOTS, name), data)
  files.write_text(os.path.join(workdir, 'report.md'), markdown(page))
  files.write_text(os.path.join(workdir, explore.EXPLORE_FILE), interactive())
  path = os.path.join(workdir, REPORT_FILE)
  files.write_text(path, html_page(f'Sweep report: {page.sweep.name}',
                                   EXPLORE_LINK + html_body(page)))
  return path
