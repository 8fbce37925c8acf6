"""bnlab's own cache of compiled programs: a warm launch loads them without tracing anything.

JAX's persistent compilation cache is keyed by the lowered program, so a warm launch still traces
and lowers each program to find it (~0.4-1 s a bucket on a 2-core CPU, more than the load). This
cache is keyed by what decides the program before any tracing: the bucket's arguments (the
caller's `parts`), bnlab's source, the versions of every package that traces it, the devices and
JAX's and XLA's settings. An entry is the serialized executables with a sha256 over them; one
that does not verify is compiled again and rewritten. Entries are only ever written from a fresh
compile: an executable that JAX's own cache loaded serializes without its kernels on a CPU
(jaxlib 0.10.2), so `jax_cache_hits` tells whether JAX's cache answered a compile. The folder
keeps the most recently used entries under MAX_BYTES; only files named like an entry are removed.

Like JAX's cache, an entry is code to run: the folder is the user's own (~/.cache/bnlab).
"""

import contextlib
import functools
import hashlib
import json
import os
import pickle
import platform
import sys
import tempfile
import threading
from importlib import metadata
from typing import Any, NamedTuple, Sequence

from absl import logging
import jax
from jax.experimental import serialize_executable

from bnlab import integrity

FOLDER = 'bnlab_programs'  # Inside the compilation cache's folder.
SUFFIX = '.bnlab-program'
FORMAT = 1  # Bumped when an entry's layout changes.
MAX_BYTES = 2 * 2**30  # The most recently used entries kept, ~1.5-2 MB a bucket on a CPU.
PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'numpy', 'ml_dtypes')  # They trace the programs.
JAX_CACHE_HIT = '/jax/compilation_cache/cache_hits'  # jax._src.compiler's event.
DIGEST_BYTES = 64  # The entry's first bytes: the hex sha256 of the rest.

_folder = None
_hits = []  # One item per JAX persistent-cache hit in this process (list.append is atomic).
_listening = False
_lock = threading.Lock()


class Entry(NamedTuple):
  """A bucket's programs as loaded, and what the caller kept with them."""
  programs: list[jax.stages.Compiled]
  extra: Any


def use(folder: str | None) -> None:
  """Keeps and loads programs in `folder`/FOLDER from now on (None: nowhere)."""
  global _folder
  _folder = None if folder is None else os.path.join(folder, FOLDER)


def folder() -> str | None:
  return _folder


@functools.cache
def _source_digest(package: str) -> str:
  """sha256 over every .py file of `package` (paths and contents): any edit changes the key."""
  root = os.path.dirname(sys.modules[package].__file__)
  digest = hashlib.sha256()
  for top, dirs, names in sorted(os.walk(root)):
    dirs.sort()
    for name in sorted(n for n in names if n.endswith('.py')):
      path = os.path.join(top, name)
      digest.update(os.path.relpath(path, root).encode() + b'\0')
      with open(path, 'rb') as f:
        digest.update(f.read() + b'\0')
  return digest.hexdigest()


def _cpu() -> str:
  """The host CPU's model and instruction sets: an executable for one may not run on another."""
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      lines = [l for l in f if l.startswith(('model name', 'flags', 'Features'))]
    return ''.join(sorted(set(lines)))
  except OSError:
    return f'{platform.machine()} {platform.processor()}'


def key(parts: dict[str, Any], devices: Sequence[jax.Device]) -> str:
  """The entry name of a bucket's programs: `parts` (what the caller compiles them from), on
  `devices`, with this code, these packages and settings, on this machine."""
  environment = {
      'format': FORMAT,
      'bnlab': _source_digest('bnlab'),
      'packages': {name: metadata.version(name) for name in PACKAGES},
      'python': sys.version,
      'devices': [(d.id, d.platform, d.device_kind, d.process_index) for d in devices],
      'platform_version': devices[0].client.platform_version,
      'cpu': _cpu(),
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'jax_config': {k: repr(v) for k, v in jax.config.values.items() if 'cache' not in k},
  }
  text = json.dumps({'parts': parts, 'environment': environment}, sort_keys=True, default=repr)
  return integrity.sha256(text)


def _path(name: str) -> str:
  return os.path.join(_folder, name + SUFFIX)


def load(name: str, devices: Sequence[jax.Device]) -> Entry | None:
  """The entry `name` loaded onto `devices`, or None: absent, or (with a warning) damaged."""
  if _folder is None or not os.path.exists(_path(name)):
    return None
  try:
    with open(_path(name), 'rb') as f:
      data = f.read()
    if integrity.sha256(data[DIGEST_BYTES:]).encode() != data[:DIGEST_BYTES]:
      raise ValueError('its contents do not match their digest')
    blobs, extra = pickle.loads(data[DIGEST_BYTES:])
    programs = [serialize_executable.deserialize_and_load(*blob, execution_devices=devices)
                for blob in blobs]
  except Exception as e:  # pylint: disable=broad-except  # Any damage: compile instead.
    logging.warning('%s: cannot load the programs kept there (%s); compiling them again',
                    _path(name), e)
    return None
  with contextlib.suppress(OSError):  # A read-only folder still serves its entries.
    os.utime(_path(name))  # Recently used: kept longest.
  return Entry(programs, extra)


def save(name: str, programs: Sequence[jax.stages.Compiled], extra: Any) -> None:
  """Keeps freshly compiled `programs` (and `extra`) as entry `name`; a folder that cannot be
  written is logged and left alone (the next launch compiles again)."""
  if _folder is None:
    return
  payload = pickle.dumps(([serialize_executable.serialize(p) for p in programs], extra))
  data = integrity.sha256(payload).encode() + payload
  temporary = None
  try:
    os.makedirs(_folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=_folder, suffix='.tmp')  # Not an entry's name.
    with os.fdopen(handle, 'wb') as f:
      f.write(data)
    os.replace(temporary, _path(name))  # Whole or absent, whoever else writes it meanwhile.
    prune(MAX_BYTES)
  except OSError as e:  # A full disk, a read-only folder: the sweep goes on without it.
    logging.warning('%s: programs not kept (%s); the next launch compiles them again', _folder, e)
    if temporary:
      with contextlib.suppress(OSError):
        os.remove(temporary)  # Our own partial file (a no-op once renamed).


def prune(max_bytes: int) -> None:
  """Removes the least recently used entries until the folder's entries take `max_bytes` or less
  (the newest always stays); files not named like an entry are never touched."""
  entries = []
  for item in os.scandir(_folder):
    if item.name.endswith(SUFFIX) and len(item.name) == 64 + len(SUFFIX) and item.is_file():
      with contextlib.suppress(FileNotFoundError):  # Another process pruned it meanwhile.
        stat = item.stat()
        entries.append((stat.st_mtime, stat.st_size, item.path))
  entries.sort(reverse=True)
  total = 0
  for i, (_, size, path) in enumerate(entries):
    total += size
    if i and total > max_bytes:
      with contextlib.suppress(FileNotFoundError):  # Another process pruned it first.
        os.remove(path)


def _count_hit(event: str, **unused_kwargs) -> None:
  if event == JAX_CACHE_HIT:
    _hits.append(event)


def jax_cache_hits() -> int:
  """How many compiles JAX's persistent cache has answered in this process (since the first
  call): a compile between two equal counts was fresh, and its executable may be kept."""
  global _listening
  with _lock:
    if not _listening:
      jax.monitoring.register_event_listener(_count_hit)
      _listening = True
  return len(_hits)
