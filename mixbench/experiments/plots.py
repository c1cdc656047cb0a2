"""Plots saved as artifacts. Matplotlib with the Agg backend: no display needed."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from mixbench.experiments.results import RunResult
from mixbench.storage.atomic import write_atomic


def save_png(fig, path: Path) -> None:
    """The figure as a PNG, written like every other file (atomic, the umask's mode, one line if it
    cannot be), then closed."""
    import matplotlib.pyplot as plt

    try:
        write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)


def plot_mixture(per_round: list[list[float]], domains: list[str], path: Path, title: str) -> Path:
    """Stacked area of the sampling mixture over rounds; legend only when it stays readable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    p = np.asarray(per_round)  # (rounds, m)
    # A mixture holds for a whole round: draw steps, round r spanning [r, r + 1).
    rounds = np.arange(p.shape[0] + 1)
    p = np.vstack([p, p[-1:]])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.get_cmap("tab20" if p.shape[1] <= 20 else "turbo")(np.linspace(0, 1, p.shape[1]))
    ax.stackplot(rounds, p.T, labels=domains, colors=colors, step="post")
    ax.set_xlabel("round (from 0)")
    ax.set_ylabel("sampling probability (stacked)")
    ax.set_ylim(0, 1)
    ax.set_xlim(0, rounds[-1])
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_title(title)
    if p.shape[1] <= 12:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    else:
        ax.text(1.01, 0.5, f"{p.shape[1]} domains\n(see results JSON)", transform=ax.transAxes,
                va="center", fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
    return path


def plot_k_sweep(sweep: list[dict], chosen_k: int, path: Path, title: str) -> Path:
    """Silhouette (left axis) and inertia (right axis) against k, the chosen k marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [r["k"] for r in sweep]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(ks, [r["silhouette"] for r in sweep], "o-", color="tab:blue", ms=3, label="silhouette")
    ax.set_xlabel("k (number of clusters)")
    ax.set_ylabel("silhouette score (higher is better)", color="tab:blue")
    chosen = ax.axvline(chosen_k, color="gray", ls="--", lw=1, label=f"chosen k = {chosen_k}")
    right = ax.twinx()
    right.plot(ks, [r["inertia"] for r in sweep], "s-", color="tab:orange", ms=3, label="inertia")
    right.set_ylabel("inertia (within-cluster sum of squares)", color="tab:orange")
    lines = ax.get_lines()[:1] + right.get_lines() + [chosen]
    ax.legend(lines, [ln.get_label() for ln in lines], loc="center right", fontsize=8)
    ax.set_title(f"{title} (chosen k = {chosen_k})")
    fig.tight_layout()
    save_png(fig, path)
    return path


def plot_curves(results: list[RunResult], metric: str | None = None):
    """Mean eval loss by original domains (or the task metric `metric`, e.g. retrieval_top1)
    against step per group of runs that differ only by seed (summary.Group: one task, one
    strategy and its hyperparameters, one way of making domains, one set of training settings):
    mean over seeds with a min–max band, a group made otherwise than the rest labelled so.
    Returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixbench.experiments.summary import Group, group_notes

    def values(r: RunResult) -> list[float]:
        if metric is None:
            return [r.metrics.initial_reference_eval_loss] + [x.reference_eval_loss for x in r.rounds]
        return ([r.metrics.initial_eval_metrics.get(metric, math.nan)]
                + [x.eval_metrics.get(metric, math.nan) for x in r.rounds])

    curves = defaultdict(dict)
    for r in results:
        if r.finished and r.rounds:
            curves[Group.of(r)].setdefault(r.seed, ([0] + [x.step for x in r.rounds], values(r)))
    notes = group_notes([r for r in results if r.finished and r.rounds])
    several_tasks = len({(g.task, g.version) for g in curves}) > 1
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for group, by_seed in sorted(curves.items()):
        runs = list(by_seed.values())
        steps = runs[0][0]
        matrix = np.array([v for s, v in runs if s == steps], dtype=float)
        evaluated = ~np.all(np.isnan(matrix), axis=0)   # rounds skipped by --eval-every have no point
        steps, matrix = np.asarray(steps)[evaluated], matrix[:, evaluated]
        mean = np.nanmean(matrix, axis=0)
        seeds = f"{len(matrix)} seed{'s' if len(matrix) != 1 else ''}"
        where = ", ".join(x for x in (group.task if several_tasks else "", group.domains, notes[group], seeds) if x)
        line, = ax.plot(steps, mean, marker="o", ms=3, label=f"{group.algo} ({where})")
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
