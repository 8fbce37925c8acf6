"""The one line a launch prints for a user's error instead of a traceback (launch.py uses these).

Each function takes what went wrong (an exception from flag parsing or from the run, a path) and
returns the line that names the flag, field, file or workdir, or '' where the error is not the
user's (a bug keeps its traceback: it is worth more than a line).
"""

import errno
import os
import re
import sysconfig
import traceback

from absl import flags

from bnlab import records


def unknown_field_problem(error, argv):
  """The line for an override of a field that the config does not have (config_flags' error)."""
  while isinstance(error, BaseException) and error.args:
    error = error.args[0]
  key, _, hint = str(error).partition('\n')
  key = key.strip('"\'')
  names = [a.split('=')[0] for a in argv if a.split('=')[0].endswith(f'.{key}')]
  renamed = [n.removeprefix('--config.') for n in names
             if n.removeprefix('--config.') in records.RENAMED]
  if renamed:
    return records.renamed_message(renamed[0])
  return (f'{names[0] if names else key}: the config has no field {key!r}'
          + (f' ({hint.strip()})' if hint else ''))


def flag_problem(error):
  """absl's line for a bad flag value; for a config override, with the type the field has."""
  message = str(error).removeprefix('flag ')
  match = re.match(r'--(config\.[\w.]+)=', message)
  if not match or match.group(1) not in flags.FLAGS:
    return message
  default = flags.FLAGS[match.group(1)].default  # An override flag's default: the field's value.
  name, _, detail = message.partition(': ')
  if default is None or not detail:
    return message
  return f'{name}: must be a {type(default).__name__} ({detail})'


def config_path(argv, default):
  """The config file that --config names in `argv` (its last one, else `default`), without a
  `:argument`."""
  path = default
  for i, arg in enumerate(argv[1:], 1):
    if arg.startswith('--config='):
      path = arg.removeprefix('--config=')
    elif arg == '--config' and i + 1 < len(argv):
      path = argv[i + 1]
  return path.split(':', 1)[0]


# Where Python's own modules and installed packages live: a frame there is not the user's code.
_LIBRARY = tuple({os.path.abspath(sysconfig.get_paths()[key]) + os.sep
                  for key in ('stdlib', 'platstdlib', 'purelib', 'platlib')})
# ml_collections' TypeError for `config.x = value` of another type than the field's.
_CAST = re.compile(r"Could not override field '(?P<field>[^']*)' \(reference\)\. (?P<value>.*) "
                   r"is of original type <class '(?P<given>[^']*)'> and cannot be casted to "
                   r"type <class '(?P<expected>[^']*)'>", re.S)


def _chain(error):
  """`error` and the exceptions it was raised from or while handling, outermost first."""
  chain = []
  while error is not None and all(error is not e for e in chain):
    chain.append(error)
    error = error.__cause__ or error.__context__
  return chain


def config_file_problem(error, path):
  """'file:line: what' for an error that the config file at `path` (or a module it imports)
  raised while it loaded, or '' for one raised elsewhere (config_flags' own errors)."""
  path = os.path.abspath(path)
  for e in _chain(error):
    frames = traceback.extract_tb(e.__traceback__)
    in_config = any(os.path.abspath(f.filename) == path for f in frames)
    if isinstance(e, SyntaxError) and (in_config or os.path.abspath(e.filename or '') == path):
      return f'{e.filename}:{e.lineno}: SyntaxError: {e.msg}'
    if not in_config:
      continue
    mine = [f for f in frames if os.path.abspath(f.filename) == path
            or not (f.filename.startswith('<') or os.path.abspath(f.filename).startswith(_LIBRARY))]
    where = mine[-1]  # The innermost line of the user's own code.
    cast = _CAST.search(str(e))
    if cast:
      return (f'{where.filename}:{where.lineno}: {where.line}: {cast["field"]} must be a '
              f'{cast["expected"]}, not a {cast["given"]}')
    text = _first_line(e)
    return f'{where.filename}:{where.lineno}: {type(e).__name__}' + (f': {text}' if text else '')
  return ''


def _first_line(error):
  return (str(error).strip().splitlines() or [''])[0]


def local_workdir_problem(workdir):
  """Why a local `workdir` cannot be written: it, or a folder above it, is a file, or it (or the
  folder it would be made in) is not writable; or ''."""
  path = os.path.abspath(workdir)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    return f'{path} is a file, not a folder'
  # Creating, renaming and deleting files in a folder needs write and search permission on it.
  # (Root passes this on any folder but one on a read-only file system, and can write there.)
  if not os.access(path, os.W_OK | os.X_OK):
    return (f'{path} is not writable; make it writable (chmod u+w) or choose another '
            '--workdir')
  return ''


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# tensorstore (under Orbax) reports a full disk in its message, not as an OSError.
DISK_FULL_TEXT = ('No space left on device', 'Disk quota exceeded')
NOT_PERMITTED = (errno.EACCES, errno.EPERM, errno.EROFS)


def write_problem(error, workdir):
  """The line for a run stopped by a full disk or a file it may not write, or '' for another
  error (a bug: its traceback is worth more than a line)."""
  for e in _chain(error):
    code = getattr(e, 'errno', None)
    where = getattr(e, 'filename', None) or workdir
    if code in DISK_FULL or any(text in str(e) for text in DISK_FULL_TEXT):
      detail = e.strerror if isinstance(e, OSError) and e.strerror else _first_line(e)
      return (f'the disk is full: cannot write {where} ({detail}); free some space, then run '
              f'the same command again to resume {workdir} from its last checkpoint')
    if isinstance(e, OSError) and code in NOT_PERMITTED:
      if _inside(where, workdir):
        return (f'cannot write {where} ({e.strerror}); make workdir {workdir} writable or '
                'choose another --workdir')
      return f'{where}: {e.strerror}'  # Outside the workdir (the data dir, a cache): read or write.
  return ''


def _inside(path, folder):
  """Whether `path` is `folder` or lies in it (local paths or URIs)."""
  norm = lambda p: str(p) if '://' in str(p) else os.path.abspath(p)
  path, folder = norm(path), norm(folder).rstrip('/')
  return path == folder or path.startswith(folder + '/')
