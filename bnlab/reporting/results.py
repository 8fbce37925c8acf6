"""The files a finished sweep leaves in its workdir, written from its trial records.

    results.csv      one row per trial: its setting, status, final metrics, epochs, seconds,
                     diverged_epoch, the running-average metrics where a trial has them
                     (model.bn_eval batch or precise: val_loss_running, val_accuracy_running),
                     and PBT's lineage (whose state it took, after which epoch)
    history.jsonl    one row per (trial, epoch): the setting, then that epoch's metrics (PBT's
                     schedule columns overwrite the setting's values with the epoch's, and
                     its copied_from names the trial whose state it took after that epoch)
    seeds.csv        with sweep.seeds > 1: mean, spread and 95% interval of each metric, and
                     each seed's value (`<metric>_seed<i>`)
    best.json        the best trial, best_config.py a config that trains it alone
    pareto.csv       with sweep.objectives: the Pareto front's rows of results.csv (which then
                     has the trials' costs and pareto_rank), and pareto/trial_<id>.py for each
    plots/pbt_schedules.png  where the records' history carries swept fields (PBT)

and, through `pages.build`, report.html, report.md and plots/. `sweepfiles.load` reads
results.csv and history.jsonl back into the same records, so a loaded sweep writes them again
byte for byte. Every file is written atomically (`files.write_text`): a killed run never leaves
half a file behind.
"""

import csv
import io
import json
import math
import os
import pprint
from typing import Any

import ml_collections

from bnlab import files
from bnlab import pareto
from bnlab import records
from bnlab import space
from bnlab import worker
from bnlab.records import TrialRecord
from bnlab.reporting import pages
from bnlab.reporting import sweepfiles

BEST_CONFIG = 'best_config.py'
PARETO_FILE = 'pareto.csv'  # With sweep.objectives: results.csv's rows of the front trials.
PARETO_DIR = 'pareto'  # ... and pareto/trial_<id>.py, a config that trains each alone.
# The columns of results.csv after `trial` and the swept fields.
CSV_TAIL = ('status',) + records.METRICS + ('epochs', 'seconds', 'diverged_epoch')
SEED_COLUMNS = tuple(f'{m}_{stat}' for m in records.METRICS for stat in ('mean', 'std', 'ci95'))


def setting_value(value: Any) -> Any:
  """A swept value as results.csv and history.jsonl both write it: a tuple (model.widths) as its
  text '(16, 16)', so that pandas can join the two files on it and group by it (a JSON list is
  unhashable); anything else as JSON takes it."""
  return str(value) if isinstance(value, tuple) else records.jsonable(value)


def _setting_cell(record: TrialRecord, field: str) -> Any:
  """A swept field's cell: empty where a conditional spec left it inactive in this trial."""
  return setting_value(record.setting[field]) if field in record.setting else ''


def running_columns(results: list[TrialRecord]) -> tuple[str, ...]:
  """The optional metrics that some trial has, as results.csv columns: the running-average
  ones (records.RUNNING: the gap between precise or batch and running BN statistics), the
  best epoch by the sweep metric with the metric there (records.with_best_epoch), and what each
  trial cost (pareto.COSTS, with sweep.objectives)."""
  best = [m for r in results[:1] for m in r.metrics if m.endswith('_best')]
  return tuple(m for m in records.RUNNING + (records.BEST_EPOCH,) + tuple(best) + pareto.COSTS
               if any(m in r.metrics for r in results))


def _epoch_cell(value: float) -> Any:
  return int(value) if math.isfinite(value) else value


def _cell(value: Any) -> Any:
  """A CSV cell: a non-finite float (no metric) and None (no diverged epoch) as empty."""
  return '' if records.jsonable(value) is None else value


def results_csv(results: list[TrialRecord], fields: list[str],
                objectives: tuple[pareto.Objective, ...] = (),
                fronts: dict[int, int] | None = None) -> str:
  """results.csv: one row per trial, the swept `fields` in their order, then CSV_TAIL, then the
  `running_columns`, then (PBT: where records carry extras['lineage']) the lineage as
  `epoch:trial` pairs, then (with `objectives`) each trial's Pareto front, `pareto_rank`: 1 on
  the front, empty with no front (diverged). `fronts` are the fronts of a larger set (pareto.csv
  holds some of results.csv's trials and keeps their fronts among all of them)."""
  out = io.StringIO()
  writer = csv.writer(out)
  lineage = any(sweepfiles.LINEAGE in r.extras for r in results)
  running = running_columns(results)
  if objectives and fronts is None:
    fronts = pareto.ranks(results, objectives)
  writer.writerow(('trial',) + tuple(fields) + CSV_TAIL + running
                  + ((sweepfiles.LINEAGE,) if lineage else ())
                  + ((pareto.RANK,) if objectives else ()))
  for r in results:
    cells = ([_setting_cell(r, f) for f in fields] + [r.status]
             + [r.value(m) for m in records.METRICS] + [r.epochs, r.seconds, r.diverged_epoch]
             + [_epoch_cell(r.value(m)) if m == records.BEST_EPOCH else r.value(m)
                for m in running])
    if lineage:
      cells.append(sweepfiles.lineage_cell(r.extras.get(sweepfiles.LINEAGE, [])))
    if objectives:
      cells.append(fronts.get(r.trial, ''))
    writer.writerow([r.trial] + [_cell(c) for c in cells])
  return out.getvalue()


def history_jsonl(results: list[TrialRecord]) -> str:
  """history.jsonl: per trial and epoch, the trial id, its setting and the epoch's row (whose
  swept fields, PBT's schedule, take the setting's place); non-finite numbers as null."""
  lines = []
  for r in results:
    setting = {f: setting_value(v) for f, v in r.setting.items()}
    for row in r.history:
      lines.append(json.dumps({'trial': r.trial, **setting,
                               **{k: records.jsonable(v) for k, v in row.items()}}))
  return '\n'.join(lines) + '\n'


def seeds_csv(results: list[TrialRecord], fields: list[str]) -> str:
  """seeds.csv: per setting trained with several seeds, the mean, standard deviation and the
  half-width of a 95% interval of each metric over its seeds, then each seed's value of the
  metrics whose per-seed values the records keep (`<metric>_seed<i>`: seed i of every setting
  shares its init and data order, so the report pairs them)."""
  out = io.StringIO()
  writer = csv.writer(out)
  per_seed = sweepfiles.per_seed_columns(results)
  writer.writerow(('trial',) + tuple(fields) + ('status', 'seeds') + SEED_COLUMNS
                  + tuple(f'{m}_seed{i}' for m, i in per_seed))
  for r in results:
    cells = [r.value(m + stat) for m in records.METRICS
             for stat in ('',) + sweepfiles.SEED_STATS]
    cells += [_seed_value(r, m, i) for m, i in per_seed]
    writer.writerow([r.trial] + [_setting_cell(r, f) for f in fields]
                    + [r.status, r.extras.get('seeds', 1)] + [_cell(c) for c in cells])
  return out.getvalue()


def _seed_value(record, metric, i):
  values = record.extras.get(sweepfiles.per_seed_key(metric), [])
  return float(values[i]) if i < len(values) else float('nan')


def _json_value(value: Any) -> Any:
  return [records.jsonable(v) for v in value] if isinstance(value, list) else (
      records.jsonable(value))


def best_json(best: TrialRecord) -> str:
  """best.json: the record's numbers flat (as results.csv names them), its extras, its setting."""
  summary = {'trial': best.trial, 'status': best.status, **best.metrics, 'epochs': best.epochs,
             'diverged_epoch': best.diverged_epoch, 'seconds': best.seconds, **best.extras}
  summary = {k: _json_value(v) for k, v in summary.items()}
  summary['setting'] = {f: records.jsonable(v) for f, v in best.setting.items()}
  return json.dumps(summary, indent=2) + '\n'


def best_config_source(config: ml_collections.ConfigDict, best: TrialRecord, workdir: str,
                       metric: str, name: str = BEST_CONFIG,
                       objectives: tuple[pareto.Objective, ...] = ()) -> str:
  """A config file that trains `best` alone: its resolved `config`, no sweep, no imports.
  `name` is where it goes in `workdir` (BEST_CONFIG, or pareto/trial_<id>.py of a front trial,
  whose docstring gives every objective's value)."""
  config = config.copy_and_resolve_references()
  epoch = best.value(records.BEST_EPOCH)
  if config.sweep.select == 'best' and math.isfinite(epoch):  # Its best epoch is its last here.
    config.train.epochs = int(epoch)
  config.sweep.num_trials = 1
  config.sweep.strategy = 'random'
  for section in config.sweep.space.values():
    for key in section:
      section[key] = ''
  literal = pprint.pformat(config.to_dict(), indent=1, width=96, sort_dicts=False)
  scores = ', '.join(f'{o.metric} {records.fmt(best.value(o.metric))}' for o in objectives)
  return (f'"""Trial {best.trial} of the sweep in {workdir}: '
          f'{scores or f"{metric} {best.value(metric):.4f}"}. Train it alone:\n\n'
          f'    python launch.py --config={os.path.join(workdir, name)}\n\n'
          f'(into {trains_into(workdir, name)} unless --workdir says otherwise).\n"""\n\n'
          f'import ml_collections\n\n\ndef get_config():\n'
          f'  return ml_collections.ConfigDict(\n{_indent(literal, 6)})\n')


def trains_into(workdir: str, name: str) -> str:
  """Where `python launch.py --config=WORKDIR/NAME` trains without --workdir."""
  return files.default_workdir(os.path.join(os.path.normpath(workdir), name))


def _indent(text, spaces):
  return '\n'.join(' ' * spaces + line for line in text.splitlines())


def leaderboard(results: list[TrialRecord], fields: list[str], metric: str, mode: str,
                top: int = 10, objectives: tuple[pareto.Objective, ...] = ()) -> str:
  """The top trials as a fixed-width text table, for the terminal; under it, when the best
  value is shared, the line that says how many share it and how they were ranked. With
  `objectives`, ranked by Pareto front (then by the first objective), every objective shown."""
  extra = [o.metric for o in objectives] + ['val_accuracy', 'test_accuracy']
  metrics = [metric] + [m for m in dict.fromkeys(extra) if m != metric]
  fronts = pareto.ranks(results, objectives) if objectives else {}
  ranking = (pareto.ranked(results, objectives, fronts) if objectives
             else records.ranked(results, metric, mode))
  header = ['rank', 'trial'] + (['front'] if objectives else []) + metrics + list(fields)
  rows = [[str(i + 1), str(r.trial)] + ([str(fronts[r.trial])] if objectives else [])
          + [records.fmt(r.value(m)) for m in metrics]
          + [records.fmt(r.setting[f]) if f in r.setting else '' for f in fields]
          for i, r in enumerate(ranking[:top])]
  widths = [max(len(x) for x in col) for col in zip(header, *rows)]
  table = ['  '.join(x.rjust(w) for x, w in zip(line, widths)) for line in [header] + rows]
  tie = records.top_tie(results, metric, mode)
  return '\n'.join(table + ([tie] if tie else []))


def start_worker() -> None:
  """Starts the report's worker process (bnlab/worker.py) ahead of `write_sweep`.

  Called by `sweep.run` once the config and workdir are checked, so that the worker's imports
  run while the sweep loads its data and compiles (BENCHMARKS.md, engine change 12).
  """
  worker.start()


def write_sweep(workdir: str, config: ml_collections.ConfigDict, specs: dict[str, space.Spec],
                results: list[TrialRecord]) -> TrialRecord | None:
  """Writes every file of a finished sweep (see the module doc); returns the best trial, or
  None when no trial counts for `config.sweep.metric` (all diverged)."""
  metric, mode = config.sweep.metric, config.sweep.mode
  objectives = pareto.parse(config.sweep.objectives)
  fronts = pareto.ranks(results, objectives) if objectives else None
  fields = list(specs)
  path = lambda name: os.path.join(workdir, name)
  files.write_text(path(sweepfiles.RESULTS_FILE),
                   results_csv(results, fields, objectives, fronts))
  files.write_text(path(sweepfiles.HISTORY_FILE), history_jsonl(results))
  if any(r.extras.get('seeds', 1) > 1 for r in results):
    files.write_text(path(sweepfiles.SEEDS_FILE), seeds_csv(results, fields))
  # report.html, report.md and plots/ (PBT's pbt_schedules.png too), from the files just written.
  pages.build(workdir)
  ranking = records.ranked(results, metric, mode)
  if not ranking:
    return None
  best = ranking[0]
  files.write_text(path('best.json'), best_json(best))
  files.write_text(path(BEST_CONFIG), best_config_source(
      space.with_overrides(config, best.setting), best, workdir, metric))
  if objectives:
    write_front(workdir, config, fields, results, objectives, fronts)
  return best


def write_front(workdir: str, config: ml_collections.ConfigDict, fields: list[str],
                results: list[TrialRecord], objectives: tuple[pareto.Objective, ...],
                fronts: dict[int, int]) -> None:
  """pareto.csv (the front's rows of results.csv, best first by the first objective) and
  pareto/trial_<id>.py for each front trial; `fronts` are the trials' `pareto.ranks`."""
  front = pareto.front(results, objectives, fronts)
  files.write_text(os.path.join(workdir, PARETO_FILE),
                   results_csv(front, fields, objectives, fronts))
  for r in front:
    name = os.path.join(PARETO_DIR, f'trial_{r.trial}.py')
    files.write_text(os.path.join(workdir, name), best_config_source(
        space.with_overrides(config, r.setting), r, workdir, config.sweep.metric, name,
        objectives))
