"""bnlab.lazy: a Ctrl-C during a mid-run import stops the run, even where the package's import
swallows it (Orbax's did: the sweep trained on after a Ctrl-C at its first save)."""

import signal
import subprocess
import sys
import textwrap
import time

from bnlab import lazy

# A package whose import, like some real ones, catches everything around a slow step.
SWALLOWING_MODULE = '''
import pathlib, sys, time
pathlib.Path(sys.argv[1]).write_text('importing')
try:
  time.sleep(5)
except:  # noqa: E722  (the habit under test)
  pass
'''


def _interrupt_during_import(tmp_path, importer):
  (tmp_path / 'swallowing.py').write_text(SWALLOWING_MODULE)
  started = tmp_path / 'started'
  script = textwrap.dedent(f'''
      import signal, sys
      sys.path.insert(0, {str(tmp_path)!r})
      sys.argv = ['x', {str(started)!r}]
      signal.signal(signal.SIGINT, signal.default_int_handler)
      from bnlab import lazy
      {importer}
      print('trained on after the Ctrl-C')
  ''')
  process = subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  while not started.exists():
    time.sleep(0.01)
  process.send_signal(signal.SIGINT)
  out, err = process.communicate(timeout=60)
  return process.returncode, out, err


def test_a_plain_import_loses_the_ctrl_c(tmp_path):
  # The control: without lazy, the package's bare except eats the KeyboardInterrupt.
  code, out, _ = _interrupt_during_import(tmp_path, 'import swallowing')
  assert code == 0 and 'trained on' in out


def test_import_module_raises_the_ctrl_c_once_the_import_is_over(tmp_path):
  code, out, err = _interrupt_during_import(tmp_path, 'lazy.import_module("swallowing")')
  assert code == -signal.SIGINT and 'trained on' not in out  # Python's exit for an uncaught one.
  assert err.strip().splitlines()[-1] == 'KeyboardInterrupt'


def test_without_a_ctrl_c_it_imports_and_restores_the_handler():
  before = signal.getsignal(signal.SIGINT)
  module = lazy.import_module('json.decoder')
  assert module is sys.modules['json.decoder']
  assert signal.getsignal(signal.SIGINT) is before
