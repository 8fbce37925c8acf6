"""The sweep's workdir files and its report, written from trial records or rebuilt from files.

    python -m bnlab.report WORKDIR [--compare WORKDIR2]

`results` writes a finished sweep's files (results.csv, history.jsonl, best.json, ...) from its
`records.TrialRecord`s; `sweepfiles` reads a workdir (finished, running or killed) back into
records; `importance` ranks the swept fields with Optuna's fANOVA evaluator, `figures` draws the
plots, `pages` writes report.html and report.md, `compare` puts two sweeps side by side, `cli`
is the command line.
"""
