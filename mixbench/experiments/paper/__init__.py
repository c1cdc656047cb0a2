"""`mixbench paper`: the R&B paper's experiments (arXiv 2505.00358) on the offline stand-ins.

    protocol.py      what is run for each claim (rows, grids, registered seeds, fixed settings, the
                     tests, α, the correction, the margin) and the paper's figures
    registration.py  a task's pre-registration as data, with the digest the report prints
    runner.py        runs every row's cells through compare's grid (resumable) and records the commands
    stats.py         per-row numbers against stratified, paired over seeds; seeds needed (power)
    significance.py  the tests: paired t, exact sign-flip, margin, bootstrap intervals, Spearman, Holm
    verdicts.py      the claims' findings and one Holm-adjusted decision over a report's tests
    report.py        the Markdown + HTML report and the per-seed CSV; the confirmatory look
    plots.py         its figures: differences from stratified per step, final values with intervals,
                     mixtures as heatmaps, loss and silhouette against k
"""
