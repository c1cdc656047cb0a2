"""The comparison table: per (algo, domains), over seeds, against stratified on the same seeds."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd

from mixbench.experiments.results import RunResult

BASELINE = "stratified"
UNFINISHED = ("diverged", "failed")   # statuses a table counts per (algo, domains), beside the seeds


def summarize(results: list[RunResult]) -> pd.DataFrame:
    """One row per (algo, domains): final eval loss (by original domains) mean ± std over seeds,
    steps to reach stratified's final loss, overhead in FLOPs and seconds, and the paired
    difference against stratified on the same seeds with a paired t-test p-value; and how many
    seeds diverged or failed (those have no final loss: they are counted, not averaged)."""
    from scipy import stats

    groups: dict[tuple[str, str], dict[int, RunResult]] = defaultdict(dict)
    unfinished = {status: defaultdict(int) for status in UNFINISHED}
    for r in results:
        if r.finished:
            groups[r.group][r.seed] = r
        elif r.status in unfinished:
            unfinished[r.status][r.group] += 1
    rows = []
    for algo, domains in sorted(set(groups).union(*unfinished.values())):
        by_seed = groups.get((algo, domains), {})
        counts = {status: unfinished[status][(algo, domains)] for status in UNFINISHED}
        if not by_seed:   # no seed finished
            rows.append({"algo": algo, "domains": domains, "seeds": 0, "final_loss_mean": math.nan,
                         "final_loss_std": math.nan, "steps_to_stratified_final": math.nan,
                         "overhead_flops_pct": math.nan, "overhead_seconds_pct": math.nan,
                         "diff_vs_stratified": math.nan, "paired_t_p": math.nan, **counts})
            continue
        base = groups.get((BASELINE, domains)) or groups.get((BASELINE, "original")) or {}
        seeds = sorted(by_seed)
        finals = np.array([by_seed[s].final_loss for s in seeds], dtype=float)
        paired = [s for s in seeds if s in base]
        diffs = np.array([by_seed[s].final_loss - base[s].final_loss for s in paired], dtype=float)
        p_value = math.nan
        if len(paired) >= 2 and algo != BASELINE and np.any(diffs != diffs[0]):
            p_value = float(stats.ttest_rel([by_seed[s].final_loss for s in paired],
                                            [base[s].final_loss for s in paired]).pvalue)
        reach = [by_seed[s].steps_to_reach(base[s].final_loss) for s in paired]
        overhead = [by_seed[s].overhead for s in seeds]
        rows.append({
            "algo": algo, "domains": domains, "seeds": len(by_seed),
            "final_loss_mean": float(finals.mean()),
            "final_loss_std": float(finals.std(ddof=1)) if finals.size > 1 else 0.0,
            "steps_to_stratified_final": float(np.nanmean(reach)) if reach and not np.all(np.isnan(reach))
            else math.nan,
            "overhead_flops_pct": float(np.mean([o.flops_pct if o else 0.0 for o in overhead])),
            "overhead_seconds_pct": float(np.mean([o.seconds_pct if o else 0.0 for o in overhead])),
            "diff_vs_stratified": float(diffs.mean()) if diffs.size else math.nan,
            "paired_t_p": p_value,
            **counts,
            **_task_metrics([by_seed[s] for s in seeds]),
        })
    return pd.DataFrame(rows)


def _task_metrics(runs: list[RunResult]) -> dict:
    """Mean and std over seeds of each task metric beyond the loss (image-text: retrieval top-1)."""
    values = defaultdict(list)
    for r in runs:
        for name, value in r.metrics.final_eval_metrics.items():
            values[name].append(value)
    out = {}
    for name, vs in values.items():
        out[f"{name}_mean"] = float(np.mean(vs))
        out[f"{name}_std"] = float(np.std(vs, ddof=1)) if len(vs) > 1 else 0.0
    return out


def metric_names(table: pd.DataFrame) -> list[str]:
    """The task metrics summarised in `table` (columns NAME_mean besides the loss)."""
    return [c[:-5] for c in table.columns if c.endswith("_mean") and c != "final_loss_mean"]


def per_domain_table(results: list[RunResult]) -> pd.DataFrame:
    """Mean final eval loss per ORIGINAL domain over seeds, one column per (algo, domains), so
    the rows line up whatever domains each run trained on."""
    columns = defaultdict(lambda: defaultdict(list))
    for r in results:
        if not r.finished:
            continue
        for domain, loss in r.metrics.final_reference_eval_losses.items():
            if math.isfinite(loss):
                columns[f"{r.strategy.name}/{r.domains.method}"][domain].append(loss)
    return pd.DataFrame({c: {d: float(np.mean(v)) for d, v in doms.items()} for c, doms in sorted(columns.items())})


def curve_metrics(results: list[RunResult]) -> list[str]:
    """Task metrics recorded every round that change over training (chance levels do not)."""
    names = {name for r in results for x in r.rounds for name in x.eval_metrics}
    return sorted(n for n in names if not n.endswith("_chance"))
