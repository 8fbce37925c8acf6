"""Imports that a run pays for only when it needs them, safe against a Ctrl-C in the middle.

A package imported mid-run (Orbax at the first save, Optuna at TPE's first ask) may wrap parts
of its own import in a bare `except:`: a Ctrl-C that lands there is swallowed (or becomes an
ImportError) and the sweep trains on, deaf to the user. `import_module` holds a Ctrl-C back
until the import is over, then raises it, so it stops the run as at any other moment.
"""

import contextlib
import importlib
import signal
import threading
from types import ModuleType
from typing import Iterator


@contextlib.contextmanager
def ctrl_c_deferred() -> Iterator[None]:
  """Within it, a Ctrl-C (SIGINT) is remembered and raised as KeyboardInterrupt on the way out."""
  if threading.current_thread() is not threading.main_thread():
    yield  # Signals reach only the main thread, which is the only one that may set handlers.
    return
  caught = []
  previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
  try:
    yield
  finally:
    signal.signal(signal.SIGINT, previous)
  if caught:
    signal.raise_signal(signal.SIGINT)  # To the handler restored above, as if it came now.


def import_module(name: str) -> ModuleType:
  """`importlib.import_module(name)`, with a Ctrl-C during the import raised after it."""
  with ctrl_c_deferred():
    return importlib.import_module(name)
