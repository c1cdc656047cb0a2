"""Plots saved as artifacts. Matplotlib with the Agg backend: no display needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
