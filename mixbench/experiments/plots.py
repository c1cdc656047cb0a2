"""Plots saved as artifacts and drawn by `mixbench report`. Matplotlib with the Agg backend: no
display needed.

The report's comparison figures show differences from stratified rather than absolute losses (a
0.4 % gap is invisible on a curve falling from 5.6 to 2), relative changes with their intervals,
mixtures as heatmaps relative to uniform (a stacked area of 60 domains is unreadable), and overhead
on a log axis that only positive values are drawn on. Every title names the task.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
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
    ax.set_title(f"{_task_names(results)}: {'eval loss' if metric is None else metric} during training\n"
                 "mean over seeds, band = min–max", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# -- the report's comparison figures -------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _task_names(results: list[RunResult]) -> str:
    """The task (or tasks) of these runs, as titles name them."""
    return ", ".join(sorted({r.task.name for r in results})) or "no runs"


def group_label(group, note: str) -> str:
    """A group as legends and axes name it: strategy (domains, how it differs from the rest)."""
    return f"{group.algo} ({group.domains}{', ' + note if note else ''})"


def _values(result: RunResult, metric: str | None) -> tuple[dict[int, float], float]:
    """({step: value} at every evaluation, step 0 included; the final value): the eval loss by
    original domains, or the task metric `metric`. Rounds skipped by --eval-every are left out."""
    if metric is None:
        start, final = result.metrics.initial_reference_eval_loss, result.final_loss
        points = {x.step: x.reference_eval_loss for x in result.rounds if x.evaluated}
    else:
        start = result.metrics.initial_eval_metrics.get(metric, math.nan)
        final = result.metrics.final_eval_metrics.get(metric, math.nan)
        points = {x.step: x.eval_metrics.get(metric, math.nan) for x in result.rounds if x.evaluated}
    curve = {s: v for s, v in {0: start, **points}.items() if v is not None and math.isfinite(v)}
    return curve, final


@dataclass(frozen=True)
class PairedSeries:
    """One group's value minus that of the stratified runs it is compared with, seed by seed (the
    same seed: the same initial model and eval rows), at every step both evaluated and at the end."""

    label: str
    baseline: str               # the stratified group it is paired with, as group_label names it
    seeds: tuple[int, ...]
    steps: np.ndarray           # (steps,)
    diffs: np.ndarray           # (seeds, steps): value − stratified's
    final_diffs: np.ndarray     # (seeds,)
    base_finals: np.ndarray     # (seeds,): stratified's final value

    @property
    def n(self) -> int:
        return len(self.seeds)

    def band(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per step: the mean difference over seeds, and mean ∓ one standard error of it (with
        two seeds exactly their min and max; NaN with one)."""
        mean = self.diffs.mean(axis=0)
        if self.n < 2:
            return mean, np.full_like(mean, np.nan), np.full_like(mean, np.nan)
        se = self.diffs.std(axis=0, ddof=1) / math.sqrt(self.n)
        return mean, mean - se, mean + se

    def relative_percent(self) -> np.ndarray:
        """Per seed: (value − stratified's) / stratified's at the end, in %."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return 100 * self.final_diffs / self.base_finals

    def relative_interval(self, level: float = 0.95) -> tuple[float, float, float]:
        """The mean relative change in %, and its t interval over seeds (NaN below two seeds)."""
        values = self.relative_percent()
        mean = float(values.mean())
        if self.n < 2:
            return mean, math.nan, math.nan
        from scipy import stats

        half = float(stats.t.ppf(0.5 + level / 2, self.n - 1) * values.std(ddof=1) / math.sqrt(self.n))
        return mean, mean - half, mean + half


def paired_with_stratified(results: list[RunResult], metric: str | None = None) -> tuple[list[PairedSeries], list[str]]:
    """Every group's difference from the stratified runs compare's table sets it against (same
    task, same training settings, same domains when such stratified runs exist, else the original
    ones; summary.baseline_runs), over the seeds both finished, in the table's order; and the labels
    of the groups no stratified seed pairs with. Stratified's own group is the zero line, not a
    series."""
    from mixbench.experiments.summary import Group, baseline_runs, group_notes

    finished = [r for r in results if r.finished]
    groups: dict = defaultdict(dict)
    for r in sorted(finished, key=lambda r: r.seed):
        groups[Group.of(r)].setdefault(r.seed, r)
    notes = group_notes(finished)
    series, unpaired = [], []
    for group in sorted(groups, key=lambda g: (g.task, g.version, g.algo, g.domains, notes[g] != "", g)):
        base = baseline_runs(group, groups)
        if base is groups[group]:
            continue
        label = group_label(group, notes[group])
        pairs = []
        for seed in sorted(set(groups[group]) & set(base)):
            (mine, final), (theirs, base_final) = _values(groups[group][seed], metric), _values(base[seed], metric)
            if math.isfinite(final) and math.isfinite(base_final):
                pairs.append((seed, mine, theirs, final, base_final))
        if not pairs:
            unpaired.append(label)
            continue
        steps = sorted(set.intersection(*(set(mine) & set(theirs) for _, mine, theirs, _, _ in pairs)))
        base_group = next(g for g, runs in groups.items() if runs is base)
        series.append(PairedSeries(
            label=label, baseline=group_label(base_group, notes[base_group]),
            seeds=tuple(seed for seed, *_ in pairs), steps=np.array(steps, dtype=float),
            diffs=np.array([[mine[s] - theirs[s] for s in steps] for _, mine, theirs, _, _ in pairs], dtype=float),
            final_diffs=np.array([final - base_final for *_, final, base_final in pairs], dtype=float),
            base_finals=np.array([base_final for *_, base_final in pairs], dtype=float)))
    return series, unpaired


def _quantity(metric: str | None) -> str:
    return "eval loss" if metric is None else metric


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def plot_differences(results: list[RunResult], metric: str | None = None):
    """Per group, its eval loss (or task metric) minus stratified's at each evaluated step, seed by
    seed, averaged over the paired seeds, with a band of ±1 standard error; 0 is stratified.
    Returns the figure, or None when no stratified run pairs with any other."""
    series, unpaired = paired_with_stratified(results, metric)
    if not series:
        return None
    plt = _pyplot()
    several_baselines = len({s.baseline for s in series}) > 1
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    ax.axhline(0.0, color="black", lw=1, label="stratified = 0 (each line's own, named after it)"
               if several_baselines else f"{series[0].baseline} = 0")
    for s in series:
        mean, low, high = s.band()
        against = f" − {s.baseline}" if several_baselines else ""
        line, = ax.plot(s.steps, mean, marker="o", ms=3, label=f"{s.label}{against}, {_seeds(s.n)}")
        if s.n > 1:
            ax.fill_between(s.steps, low, high, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("training step")
    better = "below 0: lower loss than stratified" if metric is None else f"above 0: higher {metric} than stratified"
    ax.set_ylabel(f"{_quantity(metric)} − stratified's, same seed\n({better})")
    ax.set_title(f"{_task_names(results)}: {_quantity(metric)} minus stratified's at each step, same seed\n"
                 "mean over paired seeds; band = ±1 standard error (2 seeds: their min–max)", fontsize=10)
    if unpaired:
        ax.text(0.01, 0.01, "no stratified seed to pair with: " + "; ".join(unpaired), transform=ax.transAxes,
                fontsize=7, va="bottom", color="dimgray")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_relative_changes(results: list[RunResult], metric: str | None = None):
    """Per group, the final (value − stratified's) / stratified's of the same seed, in %: the mean
    over paired seeds as a dot, its 95 % t interval as a whisker (none with one seed), and the
    numbers beside the group's name. Returns the figure, or None when nothing pairs."""
    from matplotlib.ticker import PercentFormatter

    series, _ = paired_with_stratified(results, metric)
    shown = [s for s in series if np.all(s.base_finals != 0)]
    if not shown:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 1.9 + 0.6 * len(shown)))
    several_baselines = len({s.baseline for s in shown}) > 1
    ax.axvline(0.0, color="black", lw=1, label="stratified" if several_baselines else shown[0].baseline)
    names = []
    for i, s in enumerate(shown):
        mean, low, high = s.relative_interval()
        # Single seeds just above their row, so the whisker's caps are not taken for seeds.
        ax.plot(s.relative_percent(), [i - 0.22] * s.n, "v", color="gray", ms=4, alpha=0.8,
                label="single seeds" if i == 0 else None)
        if math.isfinite(low):
            ax.errorbar([mean], [i], xerr=[[mean - low], [high - mean]], fmt="o", color="tab:blue", capsize=4,
                        lw=2, label="mean, 95 % t interval" if i == 0 else None)
            numbers = f"{_percent(mean)} % [{_percent(low)}, {_percent(high)}], {_seeds(s.n)}"
        else:
            ax.plot([mean], [i], "o", color="tab:blue", label="mean, 95 % t interval" if i == 0 else None)
            numbers = f"{_percent(mean)} %, 1 seed: no interval"
        names.append(f"{s.label}{f' vs {s.baseline}' if several_baselines else ''}\n{numbers}")
    ax.set_yticks(range(len(shown)), names, fontsize=8)
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=100, decimals=None))
    better = "< 0 is better" if metric is None else "> 0: higher than stratified"
    ax.set_xlabel(f"final {_quantity(metric)}: (strategy − stratified) / stratified, same seed ({better})")
    ax.set_title(f"{_task_names(results)}: final {_quantity(metric)} relative to stratified\n"
                 "mean over paired seeds, whisker = 95 % t interval", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _percent(x: float) -> str:
    """A signed percentage with two decimals; two significant digits when smaller than 0.1."""
    return f"{x:+.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:+.2g}"


def uniform_throughout(per_round: list[list[float]]) -> bool:
    """Whether every round sampled uniformly over the domains (stratified's mixture): nothing a
    heatmap would show."""
    p = np.asarray(per_round, dtype=float)
    return p.ndim == 2 and p.size > 0 and bool(np.allclose(p, 1 / p.shape[1], rtol=1e-6, atol=1e-9))


HEATMAP_ROW_POINTS = 7.5   # a domain's name needs this much height (points, at 6 pt type): every n-th beyond
HEATMAP_LIMIT = 6.0      # the colour scale ends at 2**6 = 64× (and 1/64×) uniform; beyond it saturates


def plot_mixture_heatmap(per_round: list[list[float]], domains: list[str], title: str):
    """Domains × rounds, coloured by log2(weight / uniform) on a diverging scale centred at 0 =
    uniform (red above, blue below); rows sorted by the last round's weight, heaviest first.
    Returns the figure."""
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    p = np.asarray(per_round, dtype=float)     # (rounds, m)
    rounds, m = p.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log2(p * m).T                # (m, rounds); a weight of 0 is -inf
    order = np.lexsort((np.arange(m), -p[-1]))  # by the last round's weight, descending; ties in domain order
    ratio = ratio[order]
    finite = np.abs(ratio[np.isfinite(ratio)])
    peak = float(finite.max()) if finite.size else 0.0
    limit = min(max(peak, 0.25), HEATMAP_LIMIT)
    beyond = peak > limit or np.isneginf(ratio).any()
    height = min(14.0, max(3.8, 1.8 + 0.12 * m))   # 100 domains: every row still gets its name
    fig, ax = plt.subplots(figsize=(8.5, height))
    image = ax.imshow(np.clip(ratio, -limit, limit), aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                      interpolation="nearest")
    row_points = 72 * (height - 1.8) / m   # the axes take about all but 1.8 in of the height
    every = max(1, math.ceil(HEATMAP_ROW_POINTS / row_points))
    rows = list(range(0, m, every))
    ax.set_yticks(rows, [_short(domains[order[i]]) for i in rows], fontsize=7 if m <= 30 else 6)
    ax.set_ylabel("domain, heaviest in the last round first"
                  + (f"\n(every {_ordinal(every)} named; {m} in all)" if every > 1 else ""))
    ax.set_xlabel("round (from 0): the mixture sampled during it")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{title}\ncolour = weight / uniform (1/{m}), log2 scale: red above uniform, blue below",
                 fontsize=10)
    bar = fig.colorbar(image, ax=ax, extend="both" if beyond else "neither", fraction=0.04, pad=0.02)
    ticks = [t for t in np.log2(RATIO_TICKS) if abs(t) <= limit + 1e-9]
    if len(ticks) > 9:   # a wide scale: powers of two only
        ticks = [t for t in ticks if float(t).is_integer()]
    bar.set_ticks(ticks)
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _ratio(2 ** v)))
    bar.set_label("weight / uniform (log2 scale; 1× = uniform)")
    fig.tight_layout()
    return fig


# Weight / uniform ratios the heatmap's colour bar may name: round numbers near 1, powers of two beyond.
RATIO_TICKS = [1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 2 / 3, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5,
               2.0, 4.0, 8.0, 16.0, 32.0, 64.0]


def _ratio(r: float) -> str:
    """1/4× rather than 0.25×; 0.9× and 2× as they are."""
    if r < 1 and abs(1 / r - round(1 / r)) < 1e-6 and round(1 / r) > 1:
        return f"1/{round(1 / r)}×"
    return f"{r:.3g}×"


def _short(name: str, width: int = 32) -> str:
    return name if len(name) <= width else name[:width - 1] + "…"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def plot_overhead(table, paper_ranges: dict[str, tuple[float, float]] | None = None):
    """Extra FLOPs per group (compare's table rows), % of training, as horizontal bars on a log
    axis: only positive values are bars; a group with none is written "0 (none)" where its bar
    would start. With `paper_ranges` ({strategy: (low, high)} %), the paper's Table 1 range for
    that strategy as a grey line under its bar. Returns the figure."""
    plt = _pyplot()

    rows = list(table.itertuples())
    paper_ranges = paper_ranges or {}
    values = [float(row.overhead_flops_pct) for row in rows]
    ranges = [paper_ranges.get(row.algo) for row in rows]
    positive = [v for v in values if math.isfinite(v) and v > 0] + [x for r in ranges if r for x in r if x > 0]
    fig, ax = plt.subplots(figsize=(8.5, 1.9 + 0.55 * len(rows)))
    labels = [f"{row.algo} ({row.domains}{', other settings' if row.settings else ''})" for row in rows]
    if positive:
        low, high = min(positive) / 5, max(positive) * 40   # room for the numbers written after the bars
        ax.set_xscale("log")
        ax.set_xlim(low, high)
    else:
        low = 0.0
        ax.set_xticks([])
    at_left = ax.get_yaxis_transform()   # x in axes fractions, y in data: where a bar would start
    measured_labelled = paper_labelled = False
    for i, (value, span) in enumerate(zip(values, ranges)):
        if math.isfinite(value) and value > 0:
            ax.barh(i, value - low, left=low, height=0.5, color="tab:purple",
                    label=None if measured_labelled else "measured here (mean over seeds)")
            measured_labelled = True
            ax.text(value * 1.1, i, f"{value:.3g} %", va="center", fontsize=8)
        else:
            ax.text(0.01, i, "0 (none)" if value == 0 else "not measured", transform=at_left, va="center", fontsize=8)
        if span and positive:
            ax.plot(span, [i + 0.35, i + 0.35], color="gray", lw=3, solid_capstyle="butt",
                    label=None if paper_labelled else "paper's Table 1 range (other models and data)")
            paper_labelled = True
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylim(len(rows) - 0.4, -0.6)
    ax.set_xlabel("extra FLOPs, % of training FLOPs (log scale; a strategy with none has no bar)" if positive
                  else "no strategy here spends extra FLOPs")
    tasks = ", ".join(sorted({str(row.task) for row in rows})) or "no runs"
    ax.set_title(f"{tasks}: overhead per strategy, measured on these runs", fontsize=10)
    if positive:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
