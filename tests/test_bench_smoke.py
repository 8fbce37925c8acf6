"""bench/run.py --smoke: every JAX system of the benchmark runs end to end at a tiny size.

No PyTorch here (CI installs requirements.txt only) and no timing assertions: this keeps the
benchmark from rotting. What is checked is that each system ran, trained (accuracy above chance)
and that the report has a row per size and every target named.
"""

import json
import os
import subprocess
import sys

import pytest

from bench import peers_common as common
from bench import peers_report as report
from tests.conftest import ROOT


# The peers' throughput benchmark end to end: 77 s on a cold compilation cache. CI runs the
# time-to-quality benchmark's smoke mode (tests/test_bench_ttq.py); this one is `slow`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def smoke(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp('bench')
  result = subprocess.run([sys.executable, os.path.join(ROOT, 'bench', 'run.py'), '--smoke',
                           f'--workdir={workdir}', f'--data_dir={data_dir}'], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(workdir / 'records.json') as f:
    return json.load(f), (workdir / 'BENCHMARKS.md').read_text()


def test_every_jax_system_ran_and_trained(smoke):
  records = smoke[0]['records']
  systems = {r['system'] for r in records}
  assert systems == {'matmul_peak', 'bnlab', 'bnlab_warm', 'bnlab_steady', 'bnlab_per_step',
                     'flax_loop', 'flax_loop_injected'}
  for r in records:
    if r['system'] == 'matmul_peak':
      assert r['peak_flops'] > 0
    elif r['system'] != 'bnlab_per_step':
      assert r['best_val_accuracy'] > 0.2, r  # Ten classes: chance is 0.1.
  assert not any(r['system'] in ('optuna_torch', 'torch_func') for r in records)


def test_the_report_has_the_machine_the_tables_and_the_targets(smoke):
  info, text = smoke[0]['machine'], smoke[1]
  assert text.startswith('# bnlab benchmarks') and info['cpu'] in text
  assert '## Peers' in text and '## Targets' in text
  assert '| 2 |' in text  # The one size of the smoke run has its row.
  for target in ('10× Optuna', '60% of the measured matmul peak', 'compile time flat',
                 '100× Optuna', 'torch.func ensemble'):
    assert target in text


def test_extrapolation_counts_the_unrun_trials_at_the_median_of_the_later_ones():
  record = {'system': 'optuna_torch', 'n': 10, 'wall_seconds': 5.0, 'trials_run': 3,
            'trial_seconds': [2.0, 1.0, 1.5]}
  assert report.total_seconds(record) == 5.0 + 7 * 1.25
  record = {'system': 'torch_func', 'n': 64, 'wall_seconds': 9.0, 'epochs': 10,
            'epoch_seconds': [3.0, 2.0, 2.0]}
  assert report.total_seconds(record) == 9.0 + 7 * 2.0
  assert report.extrapolated(record)


def test_replace_sections_keeps_the_other_helpers_sections():
  text = '# head\n\nintro\n\n## Scaling\nmine\n\n## Peers\nold\n\n## Engine changes\nkept\n'
  out = report.replace_sections(text, [['## Peers', 'new'], ['## Targets', 't']])
  assert out == ('# head\n\nintro\n\n## Scaling\nmine\n\n## Peers\nnew\n\n## Engine changes\n'
                 'kept\n\n## Targets\nt\n')


def test_flops_count_forward_dense_layers_and_backward_twice():
  # 64 -> 32 -> 10 on 2 examples: 2 * 2 * (64*32 + 32*10) FLOPs forward.
  assert common.forward_flops(64, (32,), 10, 2) == 2 * 2 * (64 * 32 + 32 * 10)
  steps = 130 // common.BATCH_SIZE
  assert common.member_epoch_flops(64, (32,), 10, 130, 5) == (
      3 * steps * common.forward_flops(64, (32,), 10, common.BATCH_SIZE)
      + common.forward_flops(64, (32,), 10, 5))


def test_the_peers_train_the_settings_bnlab_samples():
  from bnlab import space  # pylint: disable=import-outside-toplevel
  specs = space.parse_space(common.bnlab_config(common.workload('digits-3x32'), '', 4).sweep.space)
  expected = [(t['optimizer.learning_rate'], t['optimizer.b2'])
              for t in space.random_trials(specs, common.SEED, 4)]
  assert common.settings(4) == expected
