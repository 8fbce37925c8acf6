"""The course's notebooks (notebooks/*.ipynb) run top to bottom, and say what they should.

Each notebook is executed by nbclient in a fresh `python3` kernel whose working directory is the
repository's root, with a cell injected after its `parameters` cell (as papermill does) that
sets SMALL = True and points its data and workdirs at this session's temporary folders. A cell
that raises fails the test with that cell's error. The checks then read the numbers the
notebooks printed and hold them to the math (Adam's first step, softmax of the course's logits,
the share of a log-uniform's samples per decade), not to numbers copied from a run.
The three that train sweeps are marked `notebook`: CI runs them as its second command
(`python -m pytest -q -m notebook`); `python -m pytest -m slow tests/test_notebooks.py` runs
every notebook at full size.
"""

import json
import math
import os
import re

import nbclient
import nbformat
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK_DIR = os.path.join(ROOT, 'notebooks')
NOTEBOOKS = ('choosing_values', 'batch_norm', 'softmax', 'gradient_tape', 'panda_vs_caviar')
PNG = 'image/png'


def read(name: str) -> nbformat.NotebookNode:
  return nbformat.read(os.path.join(NOTEBOOK_DIR, f'{name}.ipynb'), as_version=4)


def parameters_index(nb: nbformat.NotebookNode) -> int:
  """The index of the cell tagged `parameters` (ValueError where there is none)."""
  tagged = [i for i, c in enumerate(nb.cells) if 'parameters' in c.metadata.get('tags', [])]
  if len(tagged) != 1:
    raise ValueError(f'{len(tagged)} cells tagged parameters; a notebook needs exactly one')
  return tagged[0]


def with_parameters(nb: nbformat.NotebookNode, values: dict) -> nbformat.NotebookNode:
  """A copy of `nb` with a cell setting `values` right after its parameters cell."""
  nb = nbformat.from_dict(json.loads(json.dumps(nb)))
  source = '\n'.join(f'{name} = {value!r}' for name, value in values.items())
  cell = nbformat.v4.new_code_cell(source, metadata={'tags': ['injected-parameters']})
  nb.cells.insert(parameters_index(nb) + 1, cell)
  return nb


def execute(name: str, values: dict) -> nbformat.NotebookNode:
  """Runs notebook `name` with `values` injected; raises CellExecutionError on a failing cell."""
  nb = with_parameters(read(name), values)
  client = nbclient.NotebookClient(nb, kernel_name='python3', timeout=600,
                                   resources={'metadata': {'path': ROOT}})
  return client.execute()


def text_of(nb: nbformat.NotebookNode) -> str:
  """Everything the notebook printed, stream and text/plain results, in order."""
  parts = []
  for cell in nb.cells:
    for output in cell.get('outputs', []):
      parts.append(output.get('text', '') or output.get('data', {}).get('text/plain', ''))
  return '\n'.join(parts)


def number(text: str, label: str) -> float:
  """The number printed after `label` at the start of a line (the last time it was printed)."""
  found = re.findall(r'^' + re.escape(label) + r'\s*(-?[0-9.]+(?:e-?[0-9]+)?)', text, re.M)
  assert found, f'{label!r} not printed'
  return float(found[-1])


def images(nb: nbformat.NotebookNode) -> int:
  return sum(PNG in o.get('data', {}) for c in nb.cells for o in c.get('outputs', []))


@pytest.fixture(scope='module')
def executed(data_dir, tmp_path_factory):
  """{name: function running that notebook once at SMALL size, memoised}."""
  cache = {}

  def run(name):
    if name not in cache:
      workdir = str(tmp_path_factory.mktemp(f'nb_{name}'))
      cache[name] = execute(name, {'SMALL': True, 'DATA_DIR': data_dir, 'WORKDIR': workdir})
    return cache[name]

  return run


@pytest.mark.parametrize('name', NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name):
  nb = read(name)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == 'code']
  assert all(c.outputs == [] and c.execution_count is None for c in code)
  assert code[0] is nb.cells[parameters_index(nb)], 'the first code cell sets the parameters'
  assert re.search(r'^SMALL = False\b', code[0].source, re.M)


def test_every_notebook_in_the_folder_is_tested():
  found = {f[:-len('.ipynb')] for f in os.listdir(NOTEBOOK_DIR) if f.endswith('.ipynb')}
  assert found == set(NOTEBOOKS)


def test_injection_goes_right_after_the_parameters_cell():
  nb = read('softmax')
  injected = with_parameters(nb, {'SMALL': True})
  i = parameters_index(nb)
  assert injected.cells[i + 1].source == 'SMALL = True'
  assert len(injected.cells) == len(nb.cells) + 1 and len(read('softmax').cells) == len(nb.cells)


def test_a_failing_cell_fails_with_its_error():
  nb = nbformat.v4.new_notebook(cells=[
      nbformat.v4.new_code_cell('SMALL = False', metadata={'tags': ['parameters']}),
      nbformat.v4.new_code_cell('assert not SMALL, "SMALL reached the kernel"')])
  client = nbclient.NotebookClient(with_parameters(nb, {'SMALL': True}), kernel_name='python3',
                                   timeout=60, resources={'metadata': {'path': ROOT}})
  with pytest.raises(nbclient.exceptions.CellExecutionError, match='SMALL reached the kernel'):
    client.execute()


def test_gradient_tape_reproduces_adams_first_step_and_the_minimum(executed):
  text = text_of(executed('gradient_tape'))
  # Adam's first step is lr * g / |g| (bias-corrected m and v), whatever the gradient.
  assert number(text, 'w after one step:') == pytest.approx(0.1, abs=1e-6)
  assert number(text, 'dJ/dw at w = 0:') == -10.0 and number(text, 'dJ/dw at w = 5:') == 0.0
  assert 'same trajectory as the cost in w alone: True' in text


def test_softmax_matches_the_formula_and_the_gradient_checks(executed):
  nb = executed('softmax')
  text = text_of(nb)
  z = np.array([5.0, 2.0, -1.0, 3.0])
  expected = np.exp(z) / np.exp(z).sum()  # The course's example, by the formula.
  printed = [number(text, f'y_hat[{j}] =') for j in range(4)]
  np.testing.assert_allclose(printed, expected, atol=1e-4)
  assert number(text, 'L =') == pytest.approx(-math.log(expected[0]), abs=1e-4)
  assert 'y_hat - y equals jax.grad: True' in text
  assert 'y_hat - y equals finite differences: True' in text
  assert 'matches optax: True' in text
  assert number(text, 'max |hand - jax.grad| =') < 1e-6


@pytest.mark.notebook  # Trains a sweep: CI runs these as its second command (README, Tests).
def test_choosing_values_samples_each_decade_equally_on_the_log_scale(executed):
  nb = executed('choosing_values')
  text = text_of(nb)
  n = int(number(text, 'samples per spec:'))
  # log_uniform(1e-4, 1) puts 1/4 of its mass in each decade; uniform puts 0.9 in the last one.
  for label, p in (('log_uniform share in [1e-4, 1e-3):', 0.25),
                   ('uniform share in [0.1, 1):', 0.9),
                   ('one_minus_log_uniform share above 0.99:', 0.5)):
    assert abs(number(text, label) - p) < 5 * math.sqrt(p * (1 - p) / n), label
  assert number(text, 'distinct learning rates, grid:') == 5
  assert number(text, 'distinct learning rates, random:') == number(text, 'trials each:')
  assert images(nb) >= 3
  assert 'every round inside the previous box: True' in text


@pytest.mark.notebook  # Trains a sweep: CI runs these as its second command (README, Tests).
def test_batch_norm_hand_backward_and_equivalences_hold(executed):
  nb = executed('batch_norm')
  text = text_of(nb)
  for claim in ('z-score mean 0, variance 1: True', 'the bias makes no difference: True',
                'gamma = sigma, beta = mu undo the normalization: True',
                'hand backward equals jax.grad: True', 'scratch_batch_norm grad equals jax.grad: True',
                'one group equals layer norm: True', 'groups = channels equals instance norm: True',
                'layer norm ignores the rest of the batch: True'):
    assert claim in text, claim
  # The spread of a batch mean shrinks as 1/sqrt(batch size): ratio of spreads at 4x the size.
  assert number(text, 'spread ratio for 4x the batch:') == pytest.approx(0.5, abs=0.1)
  assert images(nb) >= 2


@pytest.mark.notebook  # Trains a sweep: CI runs these as its second command (README, Tests).
def test_panda_vs_caviar_returns_results_and_shows_the_report(executed):
  nb = executed('panda_vs_caviar')
  text = text_of(nb)
  trials = int(number(text, 'caviar trials:'))
  assert trials == int(number(text, 'rows in results:'))
  for label in ('panda best val_accuracy:', 'caviar best val_accuracy:'):
    assert 0.0 <= number(text, label) <= 1.0
  assert images(nb) >= 2  # The babysat curve and the report's figures.


@pytest.mark.slow
@pytest.mark.parametrize('name', NOTEBOOKS)
def test_notebook_runs_at_full_size(name, data_dir, tmp_path):
  nb = execute(name, {'DATA_DIR': data_dir, 'WORKDIR': str(tmp_path)})
  assert images(nb) >= 1 or name == 'softmax'
