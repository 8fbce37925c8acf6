"""The rich sweep report (report.html, report.md), rebuilt from the workdir files alone.

    python -m bnlab.report WORKDIR [--compare WORKDIR2]

`sweepfiles` reads a workdir (finished, running or killed), `importance` ranks the swept fields
with Optuna's fANOVA evaluator, `figures` draws the plots, `pages` writes the HTML and Markdown.
"""
