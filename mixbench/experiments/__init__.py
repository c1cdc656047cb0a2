"""Experiments: what a user runs and reads, built on the engine.

    settings.py     a run's settings as one frozen object (RunSettings), a grid's (GridSettings)
    run.py          one run: task → (regroup) → train → results JSON + MLflow → its RunResult
    outcomes.py     how a run, grid or protocol ends short of its result: typed exceptions
    run_summary.py  what `mixbench run` prints at the end
    compare.py      a grid of (strategy, domains, seed) cells, resumable
    parallel_cells.py  compare --jobs N: cells side by side, one process each
    results.py      the results schema (RunResult), JSON in and out
    summary.py      the comparison table over seeds, against stratified
    tables.py       that table as text and Markdown
    report.py       `mixbench report`: Markdown + HTML with plots
    plots.py        the figures
    tracking.py     MLflow
    regroup.py      what `mixbench regroup` prints, saves and logs
    repro.py        the fixed-seed golden-file check (`mixbench repro`, tox -e repro)
    paper/          `mixbench paper`: the R&B paper's experiments and their report
"""
