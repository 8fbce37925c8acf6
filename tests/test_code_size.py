"""Code size: topical modules of at most 400 lines and functions of at most 60 (STYLE.md, 11).

A function's length runs from its `def` line to its last line (decorators not counted); a nested
function counts in its parent's length as well as its own.
"""

import ast
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _sources():
  """bnlab/**/*.py and launch.py, as paths relative to the repository root."""
  paths = glob.glob('bnlab/**/*.py', root_dir=ROOT, recursive=True) + ['launch.py']
  return sorted(paths)


def _read(path):
  with open(os.path.join(ROOT, path), encoding='utf-8') as f:
    return f.read()


def function_lengths(source):
  """(qualified name, lines from `def` to its end) for every function and method in `source`."""
  lengths = []

  def visit(node, prefix):
    for child in ast.iter_child_nodes(node):
      if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        name = prefix + child.name
        if not isinstance(child, ast.ClassDef):
          lengths.append((name, child.end_lineno - child.lineno + 1))
        visit(child, name + '.')
      else:
        visit(child, prefix)

  visit(ast.parse(source), '')
  return lengths


def test_no_module_is_over_400_lines():
  """Guards against modules that grow past one topic."""
  long = [f'{path}: {len(_read(path).splitlines())} lines' for path in _sources()
          if len(_read(path).splitlines()) > MAX_MODULE_LINES]
  assert not long, f'modules over {MAX_MODULE_LINES} lines:\n' + '\n'.join(long)


def test_no_function_is_over_60_lines():
  """Guards against long functions (a training loop of 200 lines in one body)."""
  long = [f'{path}: {name} {length} lines' for path in _sources()
          for name, length in function_lengths(_read(path)) if length > MAX_FUNCTION_LINES]
  assert not long, f'functions over {MAX_FUNCTION_LINES} lines:\n' + '\n'.join(long)


def test_function_lengths_counts_def_to_last_line():
  """Guards the measure itself: a 61-line function is 61 (so it fails), decorators are not
  counted, and methods and nested functions get qualified names."""
  body = ''.join(f'  x{i} = {i}\n' for i in range(60))
  source = (f'@decorator\ndef long():\n{body}\n\n'
            'class Box:\n  def method(self):\n    def inner():\n      return 1\n    return inner\n')
  assert function_lengths(source) == [('long', 61), ('Box.method', 4), ('Box.method.inner', 2)]
