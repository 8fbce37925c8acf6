"""A second process for the report's single-threaded Python: Optuna's fANOVA importance, the
figures drawn from it (reporting.pages.importance_figures), and its share of the other figures
(`share`).

launch.py starts it once the config and workdir are checked (`sweep.run` does, through
`reporting.results.start_worker`, for its other callers), so that its imports (Optuna's fANOVA
pulls in scikit-learn and scipy.stats) run on the core that the sweep's imports, data loading
and XLA's compile leave idle, and the report computes the importance there while the figures are
drawn in both processes. It pays for itself in a default launch (BENCHMARKS.md, engine change
12). Where nothing started it, `submit` or `share` does. Only launch.py and `reporting.results`
(start) and `reporting.pages` (submit, share) use it.

Like any spawned process it imports the main script again: a script that calls `sweep.run`
does so under `if __name__ == '__main__':`, as launch.py and experiments/ do. Without one the
worker cannot start, and the report computes everything in the sweep's process, with a warning.
"""

import atexit
import concurrent.futures
import gc
import importlib
import multiprocessing
import os
import signal
import threading
from typing import Any, Callable, Sequence

from absl import logging

PRELOAD = ('bnlab.reporting.pages', 'optuna.importance', 'plotly.graph_objects', 'plotly.io')
_pool = None


def _exit_with_parent():
  multiprocessing.parent_process().join()  # Returns when the parent ends, however it ends.
  os._exit(0)


def _preload():
  # A parent killed outright (SIGKILL, SIGTERM) never tells us to stop: do not outlive it.
  threading.Thread(target=_exit_with_parent, daemon=True).start()
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # A terminal's Ctrl-C is the sweep's to handle.
  if hasattr(os, 'nice'):
    os.nice(10)  # Idle cycles first: the sweep's compile and training go before our imports.
  for name in PRELOAD:
    importlib.import_module(name)
  gc.freeze()  # As launch.py does: the exit need not collect what the imports made.


def start() -> concurrent.futures.ProcessPoolExecutor:
  """Starts the worker process (once per process); it imports PRELOAD and waits for work."""
  global _pool
  if _pool is None:
    # spawn, not fork: a fork would copy JAX's running threads mid-flight.
    _pool = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context('spawn'), initializer=_preload)
    _pool.submit(int)  # The process starts at its first task.
    atexit.register(_pool.shutdown)  # Before the interpreter's teardown, which it would trip.
  return _pool


def _future(fn, *args):
  try:
    return start().submit(fn, *args)
  except concurrent.futures.BrokenExecutor:
    return None


def _result(future, fn, args):
  """The future's result; fn(*args) here where the worker died (the next call starts a new one)."""
  global _pool
  try:
    if future is not None:
      return future.result()
  except concurrent.futures.BrokenExecutor:
    pass
  logging.warning('the worker process died; %s runs here instead (a script that calls '
                  "sweep.run does so under `if __name__ == '__main__':`)", fn.__name__)
  _pool = None
  return fn(*args)


def submit(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
  """fn(*args) in the worker; returns a function that waits for its result (or raises its error).

  Where the worker died (killed, or a script calling sweep.run without a main guard broke its
  start), fn runs here instead when the result is asked for, and the next call starts a new one.
  """
  future = _future(fn, *args)
  return lambda: _result(future, fn, args)


def share(calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
  """The results of `calls` ((fn, args) each), in order, computed by both processes: the worker
  takes them from the front (after what it was given before), this process from the back, each
  call this process can still cancel there, until the two meet."""
  futures = [_future(fn, *args) for fn, args in calls]
  results = [None] * len(calls)
  here = len(calls)
  while here and (futures[here - 1] is None or futures[here - 1].cancel()):
    here -= 1
    fn, args = calls[here]
    results[here] = fn(*args)
  for i in range(here):
    results[i] = _result(futures[i], *calls[i])
  return results
