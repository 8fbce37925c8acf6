"""Imports point one way: .importlinter's layers contract holds, and no bnlab module is in a cycle.

import-linter checks the contract (a lower layer importing a higher one, or one sibling of a
`|` line importing another); grimp, the graph library under it, finds the cycles. Both read every
import statement, including those inside functions. The throwaway packages below prove that each
check reports a violation, so neither can pass for want of looking.
"""

import configparser
import os
import subprocess
import sys
import textwrap

import grimp
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, '.importlinter')


def _lint_imports(config_path, cwd):
  """Runs the `lint-imports` CLI on one config file; returns (exit status, its report)."""
  command = [sys.executable, '-c', 'from importlinter.cli import lint_imports_command as c; c()',
             config_path, '--no-cache', '--no-logo']
  env = dict(os.environ, COLUMNS='200')  # rich wraps module names at 80 columns otherwise.
  done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
  return done.returncode, done.stdout + done.stderr


def find_cycles(package):
  """Every import cycle among `package`'s modules, each as a closed chain `[a, ..., a]`.

  For each direct import a -> b, a shortest chain back from b to a closes a cycle. A cycle is
  reported once, however many of its edges find it. A module importing itself (a package's
  `__init__` reading its own names) is no cycle.
  """
  graph = grimp.build_graph(package, cache_dir=None)
  cycles = {}
  for importer in sorted(graph.modules):
    for imported in sorted(graph.find_modules_directly_imported_by(importer) - {importer}):
      back = graph.find_shortest_chain(importer=imported, imported=importer)
      if back is not None:
        cycles.setdefault(frozenset(back), [importer, *back])
  return sorted(cycles.values())


def _tangles(cycles):
  """The modules that import each other in a circle, merged into groups (strongly connected)."""
  groups = []
  for cycle in cycles:
    group = set(cycle)
    for other in [g for g in groups if g & group]:
      group |= other
      groups.remove(other)
    groups.append(group)
  return sorted(sorted(group) for group in groups)


def _contract_layer_names(config_path):
  """The module names the layers contract lists, parentheses (optional) removed."""
  parser = configparser.ConfigParser()
  parser.read(config_path)
  layers = parser['importlinter:contract:layers']['layers']
  names = [name.strip() for line in layers.splitlines() for name in line.split('|')]
  return [name.strip('()') for name in names if name]


def test_bnlab_keeps_its_layers_contract():
  """Guards the layer order: no import from a lower layer to a higher one or between siblings."""
  status, report = _lint_imports(CONFIG, cwd=ROOT)
  assert status == 0, report


def test_bnlab_has_no_import_cycles():
  """Guards against cycles among bnlab modules, which the layers contract alone cannot see
  inside one layer (e.g. between the modules of bnlab/strategies/)."""
  cycles = find_cycles('bnlab')
  tangles = '\n'.join(f'{len(group)} modules: {", ".join(group)}' for group in _tangles(cycles))
  assert not cycles, (f'modules that import each other in a circle:\n{tangles}\n'
                      'import cycles:\n' + '\n'.join(' -> '.join(c) for c in cycles))


def test_every_layer_in_the_contract_exists():
  """Guards the target layout: the layers the contract marks optional (not yet written) exist."""
  modules = grimp.build_graph('bnlab', cache_dir=None).modules
  missing = [name for name in _contract_layer_names(CONFIG) if f'bnlab.{name}' not in modules]
  assert not missing, f'layers named in .importlinter but missing from bnlab/: {missing}'


def _write_package(root, name, modules):
  package = root / name
  package.mkdir()
  (package / '__init__.py').write_text('')
  for module, source in modules.items():
    (package / f'{module}.py').write_text(textwrap.dedent(source))


def test_contract_reports_an_upward_import_and_a_sibling_import(tmp_path):
  """Guards the checker itself: the same contract form, on a throwaway package, fails and names
  a lower module importing a higher one inside a function, and one `|` sibling importing another."""
  _write_package(tmp_path, 'layerbite', {
      'high': '',
      'left': 'from layerbite import right\n',
      'right': '',
      'low': """\
          def late():
            from layerbite import high
            return high
          """,
  })
  config = tmp_path / '.importlinter'
  config.write_text(textwrap.dedent("""\
      [importlinter]
      root_package = layerbite

      [importlinter:contract:layers]
      name = layerbite imports only downward
      type = layers
      containers = layerbite
      exhaustive = true
      layers =
          high
          left | right
          (absent)
          low
      """))
  status, report = _lint_imports(str(config), cwd=tmp_path)
  assert status != 0, report
  assert 'layerbite.low is not allowed to import layerbite.high' in report, report
  assert 'layerbite.left is not allowed to import layerbite.right' in report, report
  assert 'BROKEN' in report and 'Traceback' not in report, report


def test_find_cycles_names_a_cycle_made_inside_a_function(tmp_path, monkeypatch):
  """Guards the cycle finder itself: a three-module cycle closed by a function-level import and a
  two-module one are each found once, with every module in them; an acyclic import is not."""
  _write_package(tmp_path, 'cyclebite', {
      'a': 'from cyclebite import b\n',
      'b': 'from cyclebite import c\n',
      'c': 'def late():\n  from cyclebite import a\n  return a\n',
      'd': 'from cyclebite import a\n',
      'e': 'from cyclebite import f\n',
      'f': 'from cyclebite import e\n',
  })
  monkeypatch.syspath_prepend(str(tmp_path))
  cycles = find_cycles('cyclebite')
  assert [len(cycle) for cycle in cycles] == [4, 3], cycles
  assert all(cycle[0] == cycle[-1] for cycle in cycles), cycles
  assert _tangles(cycles) == [['cyclebite.a', 'cyclebite.b', 'cyclebite.c'],
                              ['cyclebite.e', 'cyclebite.f']]


@pytest.mark.parametrize('line, names', [('report', ['report']),
                                         ('checks | monitor', ['checks', 'monitor']),
                                         ('(member)', ['member'])])
def test_contract_layer_names_are_read_as_written(tmp_path, line, names):
  """Guards the existence test: it reads `|` siblings and (optional) names as the linter does."""
  config = tmp_path / 'contract.ini'
  config.write_text(f'[importlinter:contract:layers]\nlayers =\n    {line}\n')
  assert _contract_layer_names(str(config)) == names
