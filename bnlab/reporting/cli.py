"""`python -m bnlab.report WORKDIR [--compare WORKDIR2]`: the report rebuilt from the files."""

import argparse
import sys

from bnlab import records
from bnlab.reporting import compare
from bnlab.reporting import pages


def main(argv: list[str] | None = None) -> None:
  """Rebuilds the report (and a comparison) of the workdir in `argv`; a folder without
  config.json, or a damaged file in it, exits 2 with one line naming the file."""
  parser = argparse.ArgumentParser(
      prog='python -m bnlab.report',
      description='Rebuilds report.html and report.md of a sweep workdir from its files '
                  '(also while the sweep runs, or after it was killed).')
  parser.add_argument('workdir', help='a sweep workdir (has config.json)')
  parser.add_argument('--compare', metavar='WORKDIR2', default='',
                      help='a second workdir: writes WORKDIR/compare_<WORKDIR2 name>.html')
  args = parser.parse_args(argv)
  try:
    path = pages.build(args.workdir)
    print(path)
    if args.compare:
      print(compare.write_compare(args.workdir, args.compare))
  except records.ConfigError as e:  # A damaged file (readers.DamagedFile): one line, no trace.
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except FileNotFoundError as e:
    # tf.io.gfile's errors (gs://) carry no filename, only their message.
    print(f'error: {e.filename or e} not found: a sweep workdir holds config.json',
          file=sys.stderr)
    sys.exit(2)
