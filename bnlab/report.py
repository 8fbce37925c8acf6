"""The workdir files of a sweep: results table, history, leaderboard, best config and plots.

Every file is written atomically (to a temporary name, then renamed), so a killed run never
leaves half a file behind.
"""

import csv
import io
import json
import math
import os
import pprint

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from bnlab import files  # pylint: disable=g-import-not-at-top

METRICS = ('val_accuracy', 'val_loss', 'test_accuracy', 'train_loss')
CSV_TAIL = ('status',) + METRICS + ('epochs', 'seconds', 'diverged_epoch')


def save_png(fig, path):
  """Saves and closes `fig` as a PNG at `path`, a local path, a gs:// one, or a file object.

  Rendered to bytes first: matplotlib writes only to local files or file objects.
  """
  out = path if hasattr(path, 'write') else io.BytesIO()
  fig.savefig(out, format='png', dpi=100)
  plt.close(fig)
  if out is not path:
    files.write_bytes(path, out.getvalue())


def _finite_or_none(value):
  return value if isinstance(value, (int, str)) or math.isfinite(value) else None


def _jsonable(value):
  if isinstance(value, float):
    return _finite_or_none(value)
  return list(value) if isinstance(value, tuple) else value


def results_csv(results, fields):
  out = io.StringIO()
  writer = csv.writer(out)
  writer.writerow(('trial',) + tuple(fields) + CSV_TAIL)
  for r in results:
    cells = [r['setting'][f] for f in fields] + [r[k] for k in CSV_TAIL]
    writer.writerow([r['trial']] + ['' if isinstance(c, float) and not math.isfinite(c)
                                    else c for c in cells])
  return out.getvalue()


def history_jsonl(results):
  lines = []
  for r in results:
    setting = {f: _jsonable(v) for f, v in r['setting'].items()}
    for row in r['history']:
      lines.append(json.dumps({'trial': r['trial'], **setting,
                               **{k: _jsonable(v) for k, v in row.items()}}))
  return '\n'.join(lines) + '\n'


def ranked(results, metric, mode):
  """Trials with a finite metric, best first; diverged ones never rank."""
  ok = [r for r in results if r['status'] != 'diverged' and math.isfinite(r[metric])]
  return sorted(ok, key=lambda r: r[metric], reverse=(mode == 'max'))


def _cell(value):
  if isinstance(value, float):
    return f'{value:.4g}'
  return str(value).replace(' ', '')


def leaderboard(results, fields, metric, mode, top=10):
  """The top trials as a fixed-width text table."""
  metrics = [metric] + [m for m in ('val_accuracy', 'test_accuracy') if m != metric]
  header = ['rank', 'trial'] + metrics + list(fields)
  rows = [[str(i + 1), str(r['trial'])] + [_cell(r[m]) for m in metrics]
          + [_cell(r['setting'][f]) for f in fields]
          for i, r in enumerate(ranked(results, metric, mode)[:top])]
  widths = [max(len(x) for x in col) for col in zip(header, *rows)]
  return '\n'.join('  '.join(x.rjust(w) for x, w in zip(line, widths))
                   for line in [header] + rows)


def best_config_source(config, result, workdir, metric):
  """A config file that trains the winner alone: the resolved config, no sweep, no imports."""
  config = config.copy_and_resolve_references()
  config.sweep.num_trials = 1
  config.sweep.strategy = 'random'
  for section in config.sweep.space.values():
    for key in section:
      section[key] = ''
  literal = pprint.pformat(config.to_dict(), indent=1, width=96, sort_dicts=False)
  return (f'"""Trial {result["trial"]} of the sweep in {workdir}: {metric} '
          f'{result[metric]:.4f}. Train it alone:\n\n'
          f'    python launch.py --config={os.path.join(workdir, "best_config.py")}\n"""\n\n'
          f'import ml_collections\n\n\ndef get_config():\n'
          f'  return ml_collections.ConfigDict(\n{_indent(literal, 6)})\n')


def _indent(text, spaces):
  return '\n'.join(' ' * spaces + line for line in text.splitlines())


def _x_values(spec, values):
  """Plot positions for a field's values, the axis label suffix, and the x scale."""
  if spec.scale == 'one_minus_log':
    return [1 - v for v in values], '1 - ', 'log'
  if spec.is_numeric:
    return values, '', 'log' if spec.scale == 'log' else 'linear'
  labels = [str(v) for v in spec.args]
  return [labels.index(str(v)) for v in values], '', 'categorical'


def plot_metric_vs(path, field, spec, results, metric):
  shown = [r for r in results if r['status'] != 'diverged' and math.isfinite(r[metric])]
  x, prefix, scale = _x_values(spec, [r['setting'][field] for r in shown])
  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.scatter(x, [r[metric] for r in shown], s=14, alpha=0.7)
  if scale == 'categorical':
    ax.set_xticks(range(len(spec.args)), [str(v) for v in spec.args], rotation=20, fontsize=7)
  else:
    ax.set_xscale(scale)
  ax.set_xlabel(prefix + field + (' (log scale)' if scale == 'log' else ''))
  ax.set_ylabel(metric)
  ax.set_title(f'{metric} vs {field}')
  ax.grid(alpha=0.3)
  fig.tight_layout()
  save_png(fig, path)


def write_report(workdir, config, specs, results):
  """Writes results.csv, history.jsonl, best.json, best_config.py and plots/; returns the best."""
  metric, mode = config.sweep.metric, config.sweep.mode
  fields = list(specs)
  files.write_text(os.path.join(workdir, 'results.csv'), results_csv(results, fields))
  files.write_text(os.path.join(workdir, 'history.jsonl'), history_jsonl(results))
  from bnlab.reporting import pages  # pylint: disable=import-outside-toplevel (it imports us)
  pages.build(workdir)  # report.html, report.md and plots/ (metric_vs_<field>.png among them).
  ranking = ranked(results, metric, mode)
  if not ranking:
    return None
  best = ranking[0]
  summary = {k: _jsonable(v) for k, v in best.items() if k not in ('history', 'setting', 'config')}
  summary['setting'] = {f: _jsonable(v) for f, v in best['setting'].items()}
  files.write_text(os.path.join(workdir, 'best.json'), json.dumps(summary, indent=2) + '\n')
  files.write_text(os.path.join(workdir, 'best_config.py'),
                   best_config_source(best['config'], best, workdir, metric))
  return best


def seeds_csv(results, fields):
  """One row per setting trained with several seeds: mean, standard deviation and the half-width
  of a 95% interval of each metric over its seeds."""
  out = io.StringIO()
  writer = csv.writer(out)
  writer.writerow(('trial',) + tuple(fields) + ('status', 'seeds') + tuple(
      f'{m}_{stat}' for m in METRICS for stat in ('mean', 'std', 'ci95')))
  for r in results:
    cells = [r[m + suffix] for m in METRICS for suffix in ('', '_std', '_ci95')]
    writer.writerow([r['trial']] + [r['setting'][f] for f in fields] + [r['status'], r['seeds']]
                    + ['' if not math.isfinite(c) else c for c in cells])
  return out.getvalue()


def plot_schedules(path, results, specs, metric, mode, top=5):
  """PBT: each explored hyperparameter over epochs, one line per member (the top ones in color)."""
  fields = [f for f in specs if f in results[0]['history'][0]]
  best = {r['trial'] for r in ranked(results, metric, mode)[:top]}
  fig, axes = plt.subplots(len(fields), 1, figsize=(6, 2.6 * len(fields)), squeeze=False)
  for ax, field in zip(axes[:, 0], fields):
    spec = specs[field]
    for r in results:
      epochs = [h['epoch'] for h in r['history']]
      y, prefix, scale = _x_values(spec, [h[field] for h in r['history']])
      style = ({'lw': 1.6, 'label': f'trial {r["trial"]}'} if r['trial'] in best
               else {'lw': 0.6, 'color': 'gray', 'alpha': 0.4})
      ax.step(epochs, y, where='post', **style)
    ax.set_yscale(scale if scale != 'categorical' else 'linear')
    ax.set_ylabel(prefix + field, fontsize=8)
    ax.grid(alpha=0.3)
  axes[0, 0].set_title(f'PBT hyperparameter schedules (top {top} by {metric} in color)')
  axes[0, 0].legend(fontsize=7)
  axes[-1, 0].set_xlabel('epoch')
  fig.tight_layout()
  save_png(fig, path)


def write_strategy_files(workdir, config, specs, results):
  """The strategy's extra files: seeds.csv with sweep.seeds > 1, plots/pbt_schedules.png."""
  if config.sweep.seeds > 1:
    files.write_text(os.path.join(workdir, 'seeds.csv'), seeds_csv(results, list(specs)))
  if config.sweep.strategy == 'pbt':
    plot_schedules(os.path.join(workdir, 'plots', 'pbt_schedules.png'), results, specs,
                   config.sweep.metric, config.sweep.mode)


def main(argv=None):
  """`python -m bnlab.report WORKDIR [--compare WORKDIR2]`: rebuilds the report from files."""
  from bnlab.reporting import cli  # pylint: disable=import-outside-toplevel
  cli.main(argv)


if __name__ == '__main__':
  main()
