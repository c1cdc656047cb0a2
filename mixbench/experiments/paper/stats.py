"""The numbers of the paper report's rows: each row against the task's stratified baseline, paired
over the seeds both finished, and the seeds a paired test would need to see the paper's effect.

A row's mean, std and overhead come from compare's own table (`summarize`), fed only the row's
runs and the baseline's, renamed, so that every row is paired with the protocol's baseline
whatever domains either trained on (summarize pairs a regrouped row with stratified on regrouped
domains when that exists; the paper compares with stratified on the original ones). The paired
differences carry their t-test, exact sign-flip test and bootstrap interval (significance.py);
the verdicts on the paper's claims are verdicts.py's.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from mixbench.experiments.paper import protocol, significance
from mixbench.experiments.paper.protocol import ALPHA, FIG2, POWER, PaperFigure
from mixbench.experiments.results import RunResult
from mixbench.experiments.summary import BASELINE, summarize

RETRIEVAL = "retrieval_top1"   # the image-text metric beside the loss (higher is better)


@dataclass(frozen=True)
class Paired:
    """row − baseline over the seeds both finished."""

    diffs: np.ndarray
    base_mean: float                           # the baseline's mean over those seeds
    base: np.ndarray = field(default_factory=lambda: np.empty(0))   # the baseline's value at each of them
    seeds: tuple[int, ...] = ()

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def mean(self) -> float:
        return float(self.diffs.mean()) if self.n else math.nan

    @property
    def sd(self) -> float:
        return float(self.diffs.std(ddof=1)) if self.n > 1 else math.nan

    @property
    def relative(self) -> float:
        return self.mean / self.base_mean if self.n and self.base_mean else math.nan

    @property
    def p(self) -> float:
        """Two-sided paired t-test p-value (NaN below two seeds; 1 when every difference is 0)."""
        return significance.paired_t_p(self.diffs)

    @property
    def sign_flip_p(self) -> float:
        """Exact two-sided sign-flip test of the same differences (NaN below two seeds)."""
        return significance.sign_flip_p(self.diffs)

    def relative_interval(self) -> tuple[float, float]:
        """Bootstrap 95 % interval of the relative change (seeds resampled in pairs)."""
        return significance.bootstrap_interval(self.diffs, self.base, resamples=protocol.BOOTSTRAP_RESAMPLES,
                                               seed=protocol.BOOTSTRAP_SEED)

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """t confidence interval of the mean difference (NaN below two seeds)."""
        if self.n < 2:
            return math.nan, math.nan
        from scipy import stats

        half = stats.t.ppf(0.5 + level / 2, self.n - 1) * self.sd / math.sqrt(self.n)
        return self.mean - half, self.mean + half


def paired(rows: list[RunResult], base: list[RunResult], value=lambda r: r.final_loss) -> Paired:
    by_seed = {r.seed: value(r) for r in base if r.finished and math.isfinite(value(r))}
    pairs = sorted((r.seed, value(r), by_seed[r.seed]) for r in rows
                   if r.finished and r.seed in by_seed and math.isfinite(value(r)))
    diffs = np.array([a - b for _, a, b in pairs], dtype=float)
    base_values = np.array([b for _, _, b in pairs], dtype=float)
    return Paired(diffs, float(base_values.mean()) if pairs else math.nan, base_values,
                  tuple(seed for seed, _, _ in pairs))


def retrieval(r: RunResult) -> float:
    return float(r.metrics.final_eval_metrics.get(RETRIEVAL, math.nan))


@dataclass(frozen=True)
class RowStats:
    key: str
    summary: dict             # compare's summary row (final_loss_mean, _std, overhead_*_pct, paired_t_p, ...)
    loss: Paired              # final eval loss (by original domains), row − baseline
    metric: Paired | None     # image-text: retrieval top-1, row − baseline
    k: int | None             # the number of domains it trained on (regrouped: Regroup's k, first seed's)
    silhouette: float | None  # mean over its seeds (each seed its own clustering)
    k_swept: list[int] | None
    paper: PaperFigure | None
    ks: tuple[int, ...] = ()  # k at each finished seed (regrouped by silhouette: it may differ)

    @property
    def seeds(self) -> int:
        return int(self.summary.get("seeds", 0))

    def seeds_needed(self) -> int | None:
        """Seeds for a paired t-test (α, power as in the protocol) to detect the paper's relative
        effect on our baseline's scale, given our paired seed spread; None when it cannot be said."""
        if self.paper is None:
            return None
        quantity = self.metric if self.paper.higher_is_better and self.metric is not None else self.loss
        return seeds_needed(self.paper.relative_change * quantity.base_mean, quantity.sd)


def _relabel(result: RunResult, name: str) -> RunResult:
    return dataclasses.replace(result, strategy=dataclasses.replace(result.strategy, name=name),
                               domains=dataclasses.replace(result.domains, method="original"))


def row_stats(runs: dict[str, list[RunResult]], rows: list[protocol.Row], baseline: str,
              dataset: str | None) -> dict[str, RowStats]:
    base = runs.get(baseline, [])
    out = {}
    for row in rows:
        own = runs.get(row.key, [])
        name = BASELINE if row.key == baseline else row.key
        relabelled = [_relabel(r, BASELINE) for r in base] + ([] if row.key == baseline else
                                                               [_relabel(r, name) for r in own])
        table = summarize(relabelled) if relabelled else None
        found = table[table.algo == name] if table is not None and len(table) else []
        summary = found.iloc[0].to_dict() if len(found) else {"seeds": 0}
        done = [r for r in own if r.finished]
        first = done[0] if done else None
        metric = paired(own, base, retrieval) if any(math.isfinite(retrieval(r)) for r in done) else None
        silhouettes = [r.domains.silhouette for r in done if r.domains.silhouette is not None]
        out[row.key] = RowStats(
            key=row.key, summary=summary, loss=paired(own, base), metric=metric,
            k=(first.domains.k or first.task.num_domains) if first else None,
            silhouette=float(np.mean(silhouettes)) if silhouettes else None,
            k_swept=first.domains.k_swept if first else None,
            paper=protocol.paper_figure(dataset, row.key, first.domains.k if first else None),
            ks=tuple(r.domains.k or r.task.num_domains for r in done))
    return out


def seeds_needed(effect: float, sd: float, alpha: float = ALPHA, power: float = POWER,
                 limit: int = 100_000) -> int | None:
    """The smallest n with power ≥ `power` for a two-sided paired t-test at level `alpha` to detect
    a mean difference `effect` when the differences' standard deviation is `sd`: exact, by the
    noncentral t distribution, searched upward from the normal approximation
    n ≈ ((z_{1−α/2} + z_{power}) · sd / effect)². None when there is no effect to detect or no spread
    estimate (fewer than two seeds); `limit` + 1 when more would be needed."""
    if not (math.isfinite(effect) and math.isfinite(sd)) or effect == 0:
        return None
    if sd == 0:
        return 2
    from scipy import stats

    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    n = max(2, math.ceil((z * sd / abs(effect)) ** 2))
    while n <= limit:
        df, shift = n - 1, abs(effect) / (sd / math.sqrt(n))
        critical = stats.t.ppf(1 - alpha / 2, df)
        if stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift) >= power:
            return n
        n += 1
    return limit + 1


def sweep(stats: dict[str, RowStats], rows: list[protocol.Row]) -> list[RowStats]:
    """The Fig. 2 rows with finished seeds, by k: stratified at each registered fixed k. (Regroup's
    own choice of k is no point of the sweep: each seed chooses its own.)"""
    return sorted((stats[r.key] for r in rows if r.section == FIG2 and stats[r.key].seeds), key=lambda s: s.k)


def sweep_runs(runs: dict[str, list[RunResult]], rows: list[protocol.Row]) -> dict[str, list[RunResult]]:
    """`runs` with the sweep's rows cut to the seeds every one of them finished: k values are
    compared on the same seeds. The other rows are left as they are."""
    keys = [r.key for r in rows if r.section == FIG2]
    present = [k for k in keys if any(r.finished for r in runs.get(k, []))]
    if not present:
        return runs
    common = set.intersection(*({r.seed for r in runs[k] if r.finished} for k in present))
    return {key: [r for r in results if r.seed in common] if key in present else results
            for key, results in runs.items()}


def sweep_on_common_seeds(runs: dict[str, list[RunResult]], rows: list[protocol.Row],
                          baseline: str) -> tuple[list[RowStats], dict[str, list[RunResult]]]:
    """The sweep's points (as `sweep`) computed on the seeds they all finished, and those runs."""
    swept = sweep_runs(runs, rows)
    # Only the sweep's rows (and the baseline they are compared with) need their stats again.
    needed = [r for r in rows if r.section == FIG2 or r.key == baseline]
    return sweep(row_stats(swept, needed, baseline, None), needed), swept
