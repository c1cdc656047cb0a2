"""`mixbench paper`: the R&B paper's experiments (arXiv 2505.00358) on the offline stand-ins.

    protocol.py  what is run for each claim (rows, grids, fixed settings) and the paper's figures
    runner.py    runs every row's cells through compare's grid (resumable) and records the command
    stats.py     per-row numbers against stratified, the claims' verdicts, seeds needed (power)
    report.py    the Markdown + HTML report
    plots.py     its figures: differences from stratified per step, final values with intervals,
                 mixtures as heatmaps, loss and silhouette against k
"""
