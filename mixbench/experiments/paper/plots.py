"""The paper report's figures, drawn so that the effects its table claims can be seen: differences
from stratified rather than absolute losses (a 1 % gap is invisible on a curve falling from 5.5 to
1.4), relative changes with confidence intervals beside the paper's, mixtures as heatmaps relative
to uniform, and loss and silhouette against k. Each function saves one PNG and returns its path."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mixbench.experiments.paper.stats import Paired, RowStats
from mixbench.experiments.plots import save_png
from mixbench.experiments.results import RunResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curve(result: RunResult, value=None) -> dict[int, float]:
    """{step: value} at every evaluation of a finished run, step 0 included: by default the eval
    loss by original domains; rounds skipped by --eval-every (not evaluated, NaN) are left out."""
    if value is None:
        start = {0: result.metrics.initial_reference_eval_loss}
        points = {r.step: r.reference_eval_loss for r in result.rounds if r.evaluated}
    else:
        start = {0: result.metrics.initial_eval_metrics.get(value, math.nan)}
        points = {r.step: r.eval_metrics.get(value, math.nan) for r in result.rounds if r.evaluated}
    return {s: v for s, v in {**start, **points}.items() if v is not None and math.isfinite(v)}


def paired_curves(rows: list[RunResult], base: list[RunResult], value=None) -> tuple[np.ndarray, np.ndarray]:
    """(steps, differences seeds × steps): row − baseline of the same seed, at the steps every pair evaluated."""
    by_seed = {r.seed: curve(r, value) for r in base if r.finished}
    pairs = [(curve(r, value), by_seed[r.seed]) for r in rows if r.finished and r.seed in by_seed]
    if not pairs:
        return np.array([]), np.empty((0, 0))
    steps = sorted(set.intersection(*(set(a) & set(b) for a, b in pairs)))
    return np.array(steps), np.array([[a[s] - b[s] for s in steps] for a, b in pairs], dtype=float)


def plot_differences(series: dict[str, tuple[list[RunResult], list[RunResult]]], path: Path, *, title: str,
                     ylabel: str, value=None) -> Path:
    """One line per row: the mean over seeds of (row − stratified, same seed) at each evaluated
    step, with the band spanning the seeds' min to max; 0 is stratified."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.axhline(0.0, color="black", lw=1, label="stratified (the baseline)")
    for label, (rows, base) in series.items():
        steps, diffs = paired_curves(rows, base, value)
        if not steps.size:
            continue
        line, = ax.plot(steps, diffs.mean(axis=0), marker="o", ms=3, label=f"{label} ({len(diffs)} seeds)")
        if len(diffs) > 1:
            ax.fill_between(steps, diffs.min(axis=0), diffs.max(axis=0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)
    return path


def plot_relative_changes(stats: list[RowStats], labels: dict[str, str], path: Path, *, title: str,
                          retrieval: bool = False) -> Path:
    """Each row's relative change vs stratified in % (of the final eval loss, or with `retrieval`
    of retrieval top-1), mean over paired seeds with its 95 % t interval (none below two seeds),
    and the paper's figure on the same quantity for the matching row as a diamond."""
    plt = _pyplot()

    def quantity(s: RowStats) -> Paired | None:
        return s.metric if retrieval else s.loss

    shown = [s for s in stats if quantity(s) is not None and quantity(s).n]
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(shown) + 1.6))
    ax.axvline(0.0, color="black", lw=1)
    paper_labelled = False
    for i, s in enumerate(shown):
        q = quantity(s)
        scale = 100 / q.base_mean if q.base_mean else math.nan
        low, high = q.interval()
        ax.plot([q.mean * scale], [i], "o", color="tab:blue", label="mixbench (95 % CI)" if i == 0 else None)
        if math.isfinite(low):
            ax.plot([low * scale, high * scale], [i, i], color="tab:blue", lw=2)
        if s.paper is not None and s.paper.higher_is_better == retrieval:
            ax.plot([100 * s.paper.relative_change], [i], "D", color="tab:red", ms=7,
                    label=None if paper_labelled else "paper")
            paper_labelled = True
    ax.set_yticks(range(len(shown)), [labels[s.key] for s in shown], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("retrieval top-1 change vs stratified, % (> 0 is better)" if retrieval
                  else "final eval loss change vs stratified, % (< 0 is better)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    save_png(fig, path)
    return path


def plot_mixture_heatmap(result: RunResult, path: Path, *, title: str, label_top: int = 8) -> Path:
    """Domains × rounds, coloured by log2(p / uniform): 0 is uniform, +1 twice uniform. Domains are
    ordered by their mean weight over the run, the `label_top` heaviest named on the axis."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    p = np.asarray(result.mixture.per_round, dtype=float)   # (rounds, m)
    m = p.shape[1]
    ratio = np.log2(np.clip(p * m, 1e-6, None)).T            # (m, rounds)
    order = np.argsort(-p.mean(axis=0))
    ratio = ratio[order]
    limit = max(float(np.abs(ratio).max()), 0.1)
    fig, ax = plt.subplots(figsize=(8, min(9.0, 3.0 + 0.12 * m)))
    image = ax.imshow(ratio, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    top = min(label_top, m)
    ax.set_yticks(range(top), [result.domains.names[i] for i in order[:top]], fontsize=7)
    ax.set_ylabel("domain, heaviest first")
    ax.set_xlabel("round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title + (f"\n(the {top} heaviest of {m} domains named)" if top < m else ""), fontsize=10)
    fig.colorbar(image, ax=ax, label="log2(p / uniform)")
    fig.tight_layout()
    save_png(fig, path)
    return path


def plot_k_sweep(points: list[RowStats], path: Path, *, title: str, stratified_original: float | None = None,
                 chosen_k: int | None = None) -> Path:
    """Left: final loss (mean ± std over seeds) against k, silhouette on the right axis, the k
    Regroup chose marked. Right: loss against silhouette, one point per k, with the least-squares line."""
    plt = _pyplot()
    ks = np.array([p.k for p in points], dtype=float)
    means = np.array([p.summary["final_loss_mean"] for p in points])
    stds = np.array([p.summary["final_loss_std"] for p in points])
    sil = np.array([p.silhouette if p.silhouette is not None else math.nan for p in points], dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.errorbar(ks, means, yerr=stds, fmt="s-", color="tab:red", capsize=3, label="final eval loss (± std)")
    if stratified_original is not None and math.isfinite(stratified_original):
        left.axhline(stratified_original, color="black", ls=":", lw=1, label="stratified, original domains")
    if chosen_k is not None:
        left.axvline(chosen_k, color="gray", ls="--", lw=1, label=f"silhouette's choice, k = {chosen_k}")
    left.set_xscale("log", base=2)
    left.set_xticks(ks, [str(int(k)) for k in ks])
    left.set_xlabel("k (stratified on Regroup's k clusters)")
    left.set_ylabel("final eval loss", color="tab:red")
    twin = left.twinx()
    twin.plot(ks, sil, "o--", color="tab:blue", ms=4)
    twin.set_ylabel("silhouette", color="tab:blue")
    left.legend(fontsize=7, loc="best")
    left.set_title("loss and silhouette against k")
    finite = np.isfinite(sil)
    right.scatter(sil[finite], means[finite], color="tab:purple")
    for k, x, y in zip(ks[finite], sil[finite], means[finite]):
        right.annotate(f"k={int(k)}", (x, y), fontsize=7, textcoords="offset points", xytext=(3, 3))
    if finite.sum() >= 2 and np.ptp(sil[finite]) > 0:
        slope, intercept = np.polyfit(sil[finite], means[finite], 1)
        xs = np.linspace(sil[finite].min(), sil[finite].max(), 10)
        right.plot(xs, slope * xs + intercept, color="gray", lw=1)
    right.set_xlabel("silhouette of the k clusters")
    right.set_ylabel("final eval loss")
    right.set_title("loss against silhouette (one point per k)")
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path)
    return path
