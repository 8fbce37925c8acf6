"""From bench/run.py's records to BENCHMARKS.md's "## Peers" and "## Targets" sections.

Per repeat, every system's whole-process seconds for N trials (extrapolated where it ran fewer
trials or epochs), bnlab's ratio to each, bnlab's compile seconds, steady-state epoch seconds
and MFU; then medians over the repeats. Ratios are taken within a repeat, then the median.
"""

import csv
import math
import os
import statistics

from bench import peers_common as common

PEERS = (('optuna_torch', 'Optuna + PyTorch'), ('flax_loop', 'Flax loop'),
         ('flax_loop_injected', 'Flax loop, injected hparams'), ('torch_func', 'torch.func ensemble'))
SECTIONS = ('## Peers', '## Targets')


def results_accuracy(path):
  """Best and median val_accuracy of a launch.py workdir's results.csv."""
  with open(path) as f:
    rows = list(csv.DictReader(f))
  return common.accuracy_summary([float(r['val_accuracy']) for r in rows])


def _median_tail(values):
  """Median without the first value (it carries warm-up or compile), unless it is alone."""
  return statistics.median(values[1:] if len(values) > 1 else values)


def total_seconds(record):
  """Whole-process seconds of N trials: measured, plus the unrun trials or epochs extrapolated."""
  n, wall = record['n'], record['wall_seconds']
  if 'trial_seconds' in record:
    return wall + (n - record['trials_run']) * _median_tail(record['trial_seconds'])
  if 'epoch_seconds' in record and record['system'] == 'torch_func':
    missing = record['epochs'] - len(record['epoch_seconds'])
    return wall + missing * _median_tail(record['epoch_seconds'])
  return wall


def extrapolated(record):
  if 'trial_seconds' in record:
    return record['trials_run'] < record['n']
  return record['system'] == 'torch_func' and len(record['epoch_seconds']) < record['epochs']


def _index(records):
  """{(workload, n, system): [record per repeat]} and {repeat: peak FLOP/s}."""
  table, peaks, cpu_peaks = {}, {}, {}
  for r in records:
    if r['system'] == 'matmul_peak':
      peaks[r['repeat']] = r['peak_flops']
      if 'peak_flops_per_cpu_second' in r:
        cpu_peaks[r['repeat']] = r['peak_flops_per_cpu_second']
    else:
      table.setdefault((r['workload'], r['n'], r['system']), []).append(r)
  return table, (peaks, cpu_peaks)


def _per_repeat(rows):
  return {r['repeat']: r for r in rows}


def ratios(table, workload, n, system):
  """bnlab's speed-up over `system` per repeat (peer seconds / bnlab seconds, end to end)."""
  ours = _per_repeat(table.get((workload, n, 'bnlab'), []))
  theirs = _per_repeat(table.get((workload, n, system), []))
  return [total_seconds(theirs[k]) / total_seconds(ours[k]) for k in ours if k in theirs]


def steady_stats(table, peaks, workload, n):
  """Medians over repeats: compile s, steady epoch s, MFU, per-step epoch s.

  `mfu_cpu` divides by CPU seconds instead (bnlab's epoch and the matmul peak alike), which a
  loaded machine disturbs less than wall seconds.
  """
  peaks, cpu_peaks = peaks
  steady = table.get((workload, n, 'bnlab_steady'), [])
  per_step = table.get((workload, n, 'bnlab_per_step'), [])
  out = {}
  if steady:
    epochs = [_median_tail(r['epoch_seconds']) for r in steady]
    out['compile'] = statistics.median(r['compile_seconds'] for r in steady)
    cpu = [r['compile_cpu_seconds'] for r in steady if 'compile_cpu_seconds' in r]
    if cpu:
      out['compile_cpu'] = statistics.median(cpu)
    out['epoch'] = statistics.median(epochs)
    out['mfu'] = statistics.median(n * r['member_epoch_flops'] / e / peaks[r['repeat']]
                                   for r, e in zip(steady, epochs))
    out['gflops'] = statistics.median(n * r['member_epoch_flops'] / e / 1e9
                                      for r, e in zip(steady, epochs))
    per_cpu = [n * r['member_epoch_flops'] / _median_tail(r['epoch_cpu_seconds'])
               / cpu_peaks[r['repeat']] for r in steady
               if 'epoch_cpu_seconds' in r and r['repeat'] in cpu_peaks]
    if per_cpu:
      out['mfu_cpu'] = statistics.median(per_cpu)
  if per_step:
    out['per_step_epoch'] = statistics.median(_median_tail(r['epoch_seconds']) for r in per_step)
  return out


def _fmt(value, spec='.3f'):
  return '—' if value is None or (isinstance(value, float) and math.isnan(value)) else \
      format(value, spec)


def _median_or_none(values):
  return statistics.median(values) if values else None


def speed_table(table, workload, sizes):
  head = ['N', 'bnlab s/trial', 'bnlab, warm cache']
  for _, label in PEERS:
    head += [f'{label} s/trial', '×']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for n in sizes:
    per_trial = lambda s: _median_or_none([total_seconds(r) / n
                                           for r in table.get((workload, n, s), [])])
    row = [str(n), _fmt(per_trial('bnlab'), '.4f'), _fmt(per_trial('bnlab_warm'), '.4f')]
    for system, _ in PEERS:
      rows = table.get((workload, n, system), [])
      mark = '*' if rows and extrapolated(rows[0]) else ''
      row += [_fmt(per_trial(system), '.4f') + mark,
              _fmt(_median_or_none(ratios(table, workload, n, system)), '.1f')]
    lines.append('| ' + ' | '.join(row) + ' |')
  return lines


def engine_table(table, peaks, workload, sizes):
  head = ['N', 'compile s (CPU s)', 'steady epoch s', 'GFLOP/s', 'MFU', 'MFU, CPU s',
          'per-step epoch s',
          'scan speed-up', 'bnlab peak RSS MB', 'torch.func peak RSS MB', 'bnlab best/median val acc',
          'Optuna best/median val acc']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for n in sizes:
    s = steady_stats(table, peaks, workload, n)
    rss = lambda system: _median_or_none([r['peak_rss_mb'] for r in table.get(
        (workload, n, system), [])])
    acc = lambda system: '/'.join(_fmt(_median_or_none([r[k] for r in table.get(
        (workload, n, system), [])])) for k in ('best_val_accuracy', 'median_val_accuracy'))
    speedup = (s['per_step_epoch'] / s['epoch'] if 'per_step_epoch' in s and 'epoch' in s
               else None)
    lines.append('| ' + ' | '.join([
        str(n), f"{_fmt(s.get('compile'), '.1f')} ({_fmt(s.get('compile_cpu'), '.1f')})",
        _fmt(s.get('epoch')), _fmt(s.get('gflops'), '.1f'),
        _fmt(s['mfu'] * 100, '.0f') + '%' if 'mfu' in s else '—',
        _fmt(s['mfu_cpu'] * 100, '.0f') + '%' if 'mfu_cpu' in s else '—',
        _fmt(s.get('per_step_epoch')),
        _fmt(speedup, '.1f'), _fmt(rss('bnlab'), '.0f'), _fmt(rss('torch_func'), '.0f'),
        acc('bnlab'), acc('optuna_torch')]) + ' |')
  return lines


def peers_section(info, records, args):
  """The "## Peers" section: how it was measured, then two tables per workload."""
  table, peaks = _index(records)
  run_peaks = ', '.join(f'{p / 1e9:.1f}' for p in peaks[0].values())
  lines = [SECTIONS[0], '',
           f'`{"` + `".join(info["commands"])}` on {info["date"]}: {info["cpu"]}, {info["cores"]} cores, '
           f'device `{info["device"]}`, load average {info["load_before"][0]:.1f} before and '
           f'{info["load_after"][0]:.1f} after (the machine was shared: medians of '
           f'{info["repeats"]} repeat(s), each ratio taken within one repeat). '
           f'{info["bench_seconds"] / 60:.1f} minutes in all. No GPU was lent to this task: '
           'every figure is CPU.' + (' ' + info['note'] if info.get('note') else ''), '',
           'Matmul peak (2048×2048 f32 under XLA, median of 20 in each repeat; each row\'s MFU '
           f'divides by the peak of its own repeat; one figure per repeat): {run_peaks} GFLOP/s. '
           'The peak is what the load leaves: an idle machine measures several times a loaded one.',
           '',
           '- *s/trial* is whole-process seconds for the N trials divided by N: process start, '
           'imports, data, compile and training. bnlab is `launch.py` run for real at every N '
           '(one program of N members), first with an empty persistent compilation cache, then '
           '(*warm cache*) the same sweep again. × is bnlab (empty cache) against the peer. '
           'bnlab, there and in process, makes one JAX CPU device per core and splits the '
           'members over them (`parallel.use_cpu_cores`); the 2048² peak is the same on them.',
           f'- `*` extrapolated: the sequential peers (Optuna + PyTorch, the Flax loops) run '
           f'{args.max_trials} trial(s) in their process, and the other N − k trials are counted '
           'at the median seconds of the trials after the first; the torch.func ensemble runs '
           f'its N members for {args.partial_epochs} epoch(s) and the rest are counted at its '
           f'median epoch. torch.func runs up to N = {args.torch_func_max_n} only.',
           '- *Flax loop* builds the optimizer from the trial\'s numbers, as the Flax examples '
           'do: the optimizer is a static field of the TrainState, so each trial compiles its '
           'step again. *injected* passes them through `optax.inject_hyperparams` and compiles '
           'once.',
           '- MFU: model FLOPs of a member-epoch (each step\'s forward 2·batch·Σ in·out over the '
           'Dense layers, backward twice that, plus the epoch\'s validation forward; BN, ReLU, '
           'softmax and Adam not counted) × N / the steady-state epoch seconds (median epoch '
           'after the first, in process) / the peak above. *per-step* drives the same vmapped '
           '`member.train_step` from Python one batch per call instead of the epoch\'s '
           '`lax.scan` (bnlab has no such mode; it excludes the validation pass).',
           '- peak RSS is the whole process\'s (wait4 of the child).']
  sizes = sorted({r['n'] for r in records if r['n']})
  for workload in sorted({r['workload'] for r in records if r['workload']}):
    spec = common.workload(workload, args.epochs)
    lines += ['', f'### {workload}: {spec["dataset"]}, MLP {spec["widths"]} BN before ReLU, '
              f'Adam + clip {common.CLIP_NORM}, batch {common.BATCH_SIZE}, {spec["epochs"]} '
              'epochs', '']
    lines += speed_table(table, workload, sizes)
    lines += ['']
    lines += engine_table(table, peaks, workload, sizes)
  for system, label in PEERS[:3]:
    later = [t for r in records if r['system'] == system for t in r['trial_seconds'][1:]]
    if later:
      lines += ['', f'{label}: the trials after each process\'s first took {min(later):.1f} to '
                f'{max(later):.1f} s each in this run (a spread the machine\'s load makes; its '
                'extrapolations above use their median).']
  limits = {r.get('limitation') for r in records if r.get('limitation')}
  if limits:
    lines += ['', 'torch.func: with the BN buffers stacked per member, running statistics do '
              'update under vmap in torch ' + info['versions']['torch'] + '; with one shared set '
              'of buffers (vmapping over the parameters only) it fails: "' + limits.pop() + '". '
              'torch.optim has one learning rate per parameter group, so per-member Adam and '
              'the clip are hand-written in the peer.']
  return lines


def targets_section(info, records, args):
  """The "## Targets" section: each of the issue's targets, the measured figure, met or not."""
  table, peaks = _index(records)
  main = 'digits-3x128'
  sizes = sorted({r['n'] for r in records if r['n']})
  workloads = sorted({r['workload'] for r in records if r['workload']})
  lines = [SECTIONS[1], '', '| target | measured | met? |', '|---|---|---|']

  def row(target, figure, met):
    lines.append(f'| {target} | {figure} | {met} |')

  by_n = {n: ratios(table, main, n, 'optuna_torch') for n in sizes}
  by_n = {n: statistics.median(v) for n, v in by_n.items() if v}
  spread = [max(r['trial_seconds'][1:]) / min(r['trial_seconds'][1:])
            for r in table.get((main, 256, 'optuna_torch'), []) if len(r['trial_seconds']) > 2]
  verdict = '—'
  if 256 in by_n:
    verdict = 'met' if by_n[256] >= 10 else 'not met'
    if spread and max(spread) > 3:  # The peer's own trials disagree: the load, not the method.
      verdict = (f'{verdict} in this run, but not trustworthy: Optuna\'s trials at N=256 '
                 f'varied {max(spread):.0f}× (load); see the note')
  row('CPU: end to end ≥ 10× Optuna + PyTorch at 256 trials, 3×128',
      ', '.join(f'N={n}: {v:.1f}×' for n, v in by_n.items()) or 'not measured', verdict)
  for key, unit in (('mfu', 'wall s'), ('mfu_cpu', 'CPU s')):
    mfus = {n: steady_stats(table, peaks, main, n).get(key) for n in sizes if n >= 64}
    mfus = {n: m for n, m in mfus.items() if m is not None}
    row(f'CPU: ≥ 60% of the measured matmul peak in steady state for N ≥ 64, 3×128, in {unit}',
        ', '.join(f'N={n}: {m:.0%}' for n, m in mfus.items()) or 'not measured',
        ('met' if min(mfus.values()) >= 0.6 else 'not met') if mfus else '—')
  stats = {n: steady_stats(table, peaks, main, n) for n in sizes}
  for key, unit in (('compile', 'wall s'), ('compile_cpu', 'CPU s')):
    compiles = {n: s[key] for n, s in stats.items() if key in s}
    spread = max(compiles.values()) / min(compiles.values()) - 1 if compiles else None
    row(f'CPU: compile time flat in N (8 to 1024 within 20%), 3×128, in {unit}',
        ', '.join(f'N={n}: {c:.1f}' for n, c in compiles.items()) + f' (spread {spread:.0%})'
        if compiles else 'not measured', ('met' if spread <= 0.2 else 'not met')
        if compiles else '—')
  row('GPU: ≥ 100× Optuna + PyTorch on the same GPU at 1,024 members',
      'not measured: no GPU was lent to this task', 'not measured')
  both = {(w, n): ratios(table, w, n, 'torch_func') for w in workloads for n in sizes}
  both = {k: statistics.median(v) for k, v in both.items() if v}
  row('Ahead of the torch.func ensemble at every N where both run',
      ', '.join(f'{w} N={n}: {v:.1f}×' for (w, n), v in both.items()) or 'not measured',
      ('met' if min(both.values()) > 1 else 'not met') if both else '—')
  return lines


def replace_sections(text, sections):
  """`text` with each '## Name' section of `sections` replaced (or appended), others kept."""
  parts, order, current = {None: []}, [None], None
  for line in text.splitlines():
    if line.startswith('## '):
      current = line.strip()
      order.append(current)
      parts[current] = []
    parts[current].append(line)
  for lines in sections:
    if lines[0] not in parts:
      order.append(lines[0])
    parts[lines[0]] = list(lines)
  out = []
  for name in order:
    lines = list(parts[name])
    while lines and not lines[-1].strip():
      lines.pop()
    out += lines + [''] if lines else []
  return '\n'.join(out).rstrip() + '\n'


def header(info):
  v = info['versions']
  return ['# bnlab benchmarks', '',
          f'Machine: {info["cpu"]}, {info["cores"]} cores, JAX device `{info["device"]}`; '
          f'Python {info["python"]}, jax {v["jax"]}, flax {v["flax"]}, optax {v["optax"]}, '
          f'torch {v["torch"]}, optuna {v["optuna"]}. Reproduce with `python bench/run.py` '
          '(`pip install -r requirements.txt -r requirements-bench.txt`).', '']


def update_markdown(path, info, records, args):
  """Writes the Peers and Targets sections into `path` (created with a header if absent)."""
  text = open(path).read() if os.path.exists(path) else '\n'.join(header(info)) + '\n'
  text = replace_sections(text, [peers_section(info, records, args),
                                 targets_section(info, records, args)])
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w') as f:
    f.write(text)
  return text
