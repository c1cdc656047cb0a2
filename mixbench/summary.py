"""The comparison table: per (algo, domains), over seeds, against stratified on the same seeds."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd

BASELINE = "stratified"


def _key(r: dict) -> tuple[str, str]:
    return r["strategy"]["name"], r["domains"]["method"]


def final_loss(result: dict) -> float:
    """The loss runs are compared on: Σ q_i L_i over the task's ORIGINAL domains, the same
    quantity whatever domains a run trained on (results from before it existed: the run's own)."""
    return _reference_or_own(result["metrics"], "final_reference_eval_loss", "final_mean_eval_loss")


def round_loss(record: dict) -> float:
    return _reference_or_own(record, "reference_eval_loss", "mean_eval_loss")


def _reference_or_own(values: dict, reference: str, own: str) -> float:
    value = values.get(reference)
    return value if value is not None and math.isfinite(value) else values[own]


def steps_to_reach(result: dict, target: float) -> float:
    """The first round-end step at which the eval loss is at or below `target` (NaN: never)."""
    for record in result["rounds"]:
        loss = round_loss(record)
        if loss is not None and loss <= target:
            return float(record["step"])
    return math.nan


def summarize(results: list[dict]) -> pd.DataFrame:
    """One row per (algo, domains): final eval loss (by original domains) mean ± std over seeds, steps to reach
    stratified's final loss, overhead in FLOPs and seconds, and the paired difference against
    stratified on the same seeds with a paired t-test p-value."""
    from scipy import stats

    groups: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for r in results:
        if r.get("status") == "finished":
            groups[_key(r)][r["seed"]] = r
    rows = []
    for (algo, domains), by_seed in sorted(groups.items()):
        base = groups.get((BASELINE, domains)) or groups.get((BASELINE, "original")) or {}
        finals = np.array([final_loss(by_seed[s]) for s in sorted(by_seed)], dtype=float)
        paired = [s for s in sorted(by_seed) if s in base]
        diffs = np.array([final_loss(by_seed[s]) - final_loss(base[s]) for s in paired], dtype=float)
        p_value = math.nan
        if len(paired) >= 2 and algo != BASELINE and np.any(diffs != diffs[0]):
            p_value = float(stats.ttest_rel([final_loss(by_seed[s]) for s in paired],
                                            [final_loss(base[s]) for s in paired]).pvalue)
        reach = [steps_to_reach(by_seed[s], final_loss(base[s])) for s in paired]
        overhead = [by_seed[s]["overhead"] or {} for s in sorted(by_seed)]
        rows.append({
            "algo": algo, "domains": domains, "seeds": len(by_seed),
            "final_loss_mean": float(finals.mean()),
            "final_loss_std": float(finals.std(ddof=1)) if finals.size > 1 else 0.0,
            "steps_to_stratified_final": float(np.nanmean(reach)) if reach and not np.all(np.isnan(reach))
            else math.nan,
            "overhead_flops_pct": float(np.mean([o.get("flops_pct", 0.0) for o in overhead])),
            "overhead_seconds_pct": float(np.mean([o.get("seconds_pct", 0.0) for o in overhead])),
            "diff_vs_stratified": float(diffs.mean()) if diffs.size else math.nan,
            "paired_t_p": p_value,
            **_task_metrics([by_seed[s] for s in sorted(by_seed)]),
        })
    return pd.DataFrame(rows)


def _task_metrics(runs: list[dict]) -> dict:
    """Mean and std over seeds of each task metric beyond the loss (image-text: retrieval top-1)."""
    values = defaultdict(list)
    for r in runs:
        for name, value in (r["metrics"].get("final_eval_metrics") or {}).items():
            values[name].append(value)
    out = {}
    for name, vs in values.items():
        out[f"{name}_mean"] = float(np.mean(vs))
        out[f"{name}_std"] = float(np.std(vs, ddof=1)) if len(vs) > 1 else 0.0
    return out


def _metric_names(table: pd.DataFrame) -> list[str]:
    return [c[:-5] for c in table.columns if c.endswith("_mean") and c != "final_loss_mean"]


def per_domain_table(results: list[dict]) -> pd.DataFrame:
    """Mean final eval loss per ORIGINAL domain over seeds, one column per (algo, domains), so
    the rows line up whatever domains each run trained on."""
    columns = defaultdict(lambda: defaultdict(list))
    for r in results:
        if r.get("status") != "finished":
            continue
        losses = r["metrics"].get("final_reference_eval_losses") or r["metrics"]["final_eval_losses"]
        for domain, loss in losses.items():
            if loss is not None:
                columns[f"{r['strategy']['name']}/{r['domains']['method']}"][domain].append(loss)
    return pd.DataFrame({c: {d: float(np.mean(v)) for d, v in doms.items()} for c, doms in sorted(columns.items())})


def format_table(table: pd.DataFrame) -> str:
    metrics = _metric_names(table)
    lines = [f"{'algo':<11} {'domains':<9} {'seeds':>5}  {'final eval loss':>17}  {'steps to strat.':>15}  "
             f"{'FLOPs +%':>10}  {'time +%':>8}  {'Δ vs strat.':>11}  {'p (paired t)':>12}"
             + "".join(f"  {name:>17}" for name in metrics)]
    for row in table.to_dict("records"):
        lines.append(
            f"{row['algo']:<11} {row['domains']:<9} {row['seeds']:>5}  {row['final_loss_mean']:>8.4f} ± "
            f"{row['final_loss_std']:<6.4f}  {_num(row['steps_to_stratified_final'], '.0f'):>15}  "
            f"{row['overhead_flops_pct']:>10.4g}  {row['overhead_seconds_pct']:>8.3g}  "
            f"{_num(row['diff_vs_stratified'], '+.4f'):>11}  {_num(row['paired_t_p'], '.3g'):>12}"
            + "".join(f"  {_pm(row, name):>17}" for name in metrics))
    return "\n".join(lines)


def _pm(row: dict, name: str) -> str:
    mean, std = row.get(f"{name}_mean"), row.get(f"{name}_std")
    return "—" if mean is None or math.isnan(mean) else f"{mean:.4f} ± {std:.4f}"


def to_markdown(table: pd.DataFrame) -> str:
    metrics = _metric_names(table)
    header = ("| algo | domains | seeds | final eval loss (mean ± std) | steps to stratified's final | "
              "FLOP overhead % | time overhead % | Δ vs stratified | p (paired t) |"
              + "".join(f" {name} (mean ± std) |" for name in metrics))
    lines = [header, "|" + "---|" * (9 + len(metrics))]
    for row in table.to_dict("records"):
        lines.append(f"| {row['algo']} | {row['domains']} | {row['seeds']} | {row['final_loss_mean']:.4f} ± "
                     f"{row['final_loss_std']:.4f} | {_num(row['steps_to_stratified_final'], '.0f')} | "
                     f"{row['overhead_flops_pct']:.4g} | {row['overhead_seconds_pct']:.3g} | "
                     f"{_num(row['diff_vs_stratified'], '+.4f')} | {_num(row['paired_t_p'], '.3g')} |"
                     + "".join(f" {_pm(row, name)} |" for name in metrics))
    return "\n".join(lines)


def _num(x: float, fmt: str) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def summary_figure(results: list[dict], metric: str | None = None):
    """Mean eval loss (or the task metric `metric`, e.g. retrieval_top1) against step per
    (algo, domains): mean over seeds with a min–max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def value(record_or_metrics: dict, initial: bool) -> float:
        if metric is None:
            if initial:
                return _reference_or_own(record_or_metrics, "initial_reference_eval_loss", "initial_mean_eval_loss")
            return round_loss(record_or_metrics)
        metrics = record_or_metrics["initial_eval_metrics" if initial else "eval_metrics"] or {}
        return metrics.get(metric, math.nan)

    curves = defaultdict(list)
    for r in results:
        if r.get("status") == "finished" and r["rounds"]:
            steps = [0] + [x["step"] for x in r["rounds"]]
            values = [value(r["metrics"], True)] + [value(x, False) for x in r["rounds"]]
            curves[_key(r)].append((steps, values))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for (algo, domains), runs in sorted(curves.items()):
        steps = runs[0][0]
        matrix = np.array([values for s, values in runs if s == steps], dtype=float)
        mean = np.nanmean(matrix, axis=0)
        line, = ax.plot(steps, mean, marker="o", ms=3, label=f"{algo} ({domains}, {len(matrix)} seeds)")
        if len(matrix) > 1:
            ax.fill_between(steps, np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0), alpha=0.2,
                            color=line.get_color())
    ax.set_xlabel("training step")
    ax.set_ylabel("eval loss (q-weighted over original domains)" if metric is None
                  else f"{metric} on the eval subset")
    ax.set_title(f"{'eval loss' if metric is None else metric} during training: mean over seeds, band = min–max")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def curve_metrics(results: list[dict]) -> list[str]:
    """Task metrics recorded every round that change over training (chance levels do not)."""
    names = {name for r in results for x in r["rounds"] for name in (x.get("eval_metrics") or {})}
    return sorted(n for n in names if not n.endswith("_chance"))
