"""`python -m bnlab.report WORKDIR [--compare WORKDIR2]`: rebuilds a sweep's report from its files.

The entry point alone: the report itself lives in bnlab/reporting/ (the command line in
`reporting.cli`, the workdir files in `reporting.results`).
"""

from bnlab.reporting import cli


def main(argv: list[str] | None = None) -> None:
  """Runs the command line of `reporting.cli` on `argv` (default sys.argv)."""
  cli.main(argv)


if __name__ == '__main__':
  main()
