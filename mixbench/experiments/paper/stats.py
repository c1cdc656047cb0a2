"""The numbers of the paper report: each row against the task's stratified baseline, the verdict
on each of the paper's claims, and the seeds a paired test would need to see the paper's effect.

A row's mean, std, overhead and paired test come from compare's own table (`summarize`), fed only
the row's runs and the baseline's, renamed, so that every row is paired with the protocol's
baseline whatever domains either trained on (summarize pairs a regrouped row with stratified on
regrouped domains when that exists; the paper compares with stratified on the original ones).

Verdicts use two-sided paired t-tests over the seeds both rows finished (α = protocol.ALPHA):
reproduced when the paper's direction is significant, not reproduced when the opposite direction
is (or, for the overhead claim, when the overhead bound fails), otherwise not significant at these
seeds — which includes every comparison with fewer than two paired seeds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from mixbench.experiments.paper import protocol
from mixbench.experiments.paper.protocol import ADAPTIVE_BASELINES, ALPHA, FIG2, IMAGE, POWER, TABLE1, PaperFigure
from mixbench.experiments.results import RunResult
from mixbench.experiments.summary import BASELINE, summarize

REPRODUCED, NOT_REPRODUCED, NOT_SIGNIFICANT = "reproduced", "not reproduced", "not significant at these seeds"
NOT_MEASURED = "not measured"
RETRIEVAL = "retrieval_top1"   # the image-text metric beside the loss (higher is better)


@dataclass(frozen=True)
class Paired:
    """row − baseline over the seeds both finished."""

    diffs: np.ndarray
    base_mean: float          # the baseline's mean over those seeds

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
        if self.n < 2:
            return math.nan
        if np.all(self.diffs == self.diffs[0]):
            return 1.0 if self.diffs[0] == 0 else 0.0   # no spread: the difference is exact
        from scipy import stats

        return float(stats.ttest_1samp(self.diffs, 0.0).pvalue)

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """t confidence interval of the mean difference (NaN below two seeds)."""
        if self.n < 2:
            return math.nan, math.nan
        from scipy import stats

        half = stats.t.ppf(0.5 + level / 2, self.n - 1) * self.sd / math.sqrt(self.n)
        return self.mean - half, self.mean + half


def paired(rows: list[RunResult], base: list[RunResult], value=lambda r: r.final_loss) -> Paired:
    by_seed = {r.seed: value(r) for r in base if r.finished and math.isfinite(value(r))}
    pairs = [(value(r), by_seed[r.seed]) for r in rows if r.finished and r.seed in by_seed and math.isfinite(value(r))]
    diffs = np.array([a - b for a, b in pairs], dtype=float)
    return Paired(diffs, float(np.mean([b for _, b in pairs])) if pairs else math.nan)


def retrieval(r: RunResult) -> float:
    return float(r.metrics.final_eval_metrics.get(RETRIEVAL, math.nan))


@dataclass(frozen=True)
class RowStats:
    key: str
    summary: dict             # compare's summary row (final_loss_mean, _std, overhead_*_pct, paired_t_p, ...)
    loss: Paired              # final eval loss (by original domains), row − baseline
    metric: Paired | None     # image-text: retrieval top-1, row − baseline
    k: int | None             # the number of domains it trained on (regrouped: Regroup's k)
    silhouette: float | None
    k_swept: list[int] | None
    paper: PaperFigure | None

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
        out[row.key] = RowStats(
            key=row.key, summary=summary, loss=paired(own, base), metric=metric,
            k=(first.domains.k or first.task.num_domains) if first else None,
            silhouette=first.domains.silhouette if first else None,
            k_swept=first.domains.k_swept if first else None,
            paper=protocol.paper_figure(dataset, row.key, first.domains.k if first else None))
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


# -- the claims -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    claim: str          # protocol.Claim key
    task: str
    outcome: str        # REPRODUCED | NOT_REPRODUCED | NOT_SIGNIFICANT | NOT_MEASURED
    measured: str       # one line: what was measured here


def _direction(diff: float, p: float, expected_negative: bool = True) -> str:
    """The outcome of a test whose expected sign is negative (a lower loss) unless said otherwise."""
    if not (math.isfinite(diff) and math.isfinite(p)) or p >= ALPHA or diff == 0:
        return NOT_SIGNIFICANT
    return REPRODUCED if (diff < 0) == expected_negative else NOT_REPRODUCED


def _fmt_p(p: float) -> str:
    return "p = —" if not math.isfinite(p) else f"p = {p:.3g}"


def _fmt_diff(paired_: Paired) -> str:
    return (f"{paired_.mean:+.4f} ({100 * paired_.relative:+.2f} %), {_fmt_p(paired_.p)}, {paired_.n} paired seeds"
            if paired_.n else "no paired seeds")


def verdict_regroup(task: str, stats: dict[str, RowStats], ood: bool, modality: str) -> Verdict:
    row = stats.get("stratified-regroup")
    if modality != "text" or ood or row is None or "stratified" not in stats:
        why = ("eval domains are unseen in training, so nothing trains on the original ones" if ood
               else "the paper has no original domains for its image-text data")
        return Verdict("regroup", task, NOT_MEASURED, f"not possible here: {why}")
    if not row.loss.n:
        return Verdict("regroup", task, NOT_MEASURED, "no finished paired seeds")
    k = f" (k = {row.k})" if row.k else ""
    return Verdict("regroup", task, _direction(row.loss.mean, row.loss.p),
                   f"stratified on regrouped domains{k} − on original ones: {_fmt_diff(row.loss)}")


def verdict_rnb_best(task: str, stats: dict[str, RowStats], runs: dict[str, list[RunResult]],
                     baseline: str) -> Verdict:
    rnb = stats.get("rnb")
    candidates = [k for k in (baseline, *ADAPTIVE_BASELINES) if k in stats and stats[k].seeds]
    if rnb is None or not rnb.seeds or not candidates:
        return Verdict("rnb_best", task, NOT_MEASURED, "R&B or the baselines have no finished seeds")
    best = min(candidates, key=lambda k: stats[k].summary["final_loss_mean"])
    versus = paired(runs["rnb"], runs[best])
    overheads = {k: stats[k].summary.get("overhead_flops_pct", math.nan) for k in ADAPTIVE_BASELINES
                 if k in stats and stats[k].seeds}
    rnb_overhead = rnb.summary.get("overhead_flops_pct", math.nan)
    cheapest = min(overheads.values(), default=math.nan)
    ratio = rnb_overhead / cheapest if cheapest and math.isfinite(cheapest) else math.nan
    overhead_ok = math.isfinite(ratio) and ratio <= 0.01
    line = (f"R&B − best baseline ({best}): {_fmt_diff(versus)}; R&B overhead {rnb_overhead:.3g} % of training "
            f"FLOPs, {ratio:.2g}× the cheapest adaptive baseline's ({cheapest:.3g} %)"
            if math.isfinite(ratio) else
            f"R&B − best baseline ({best}): {_fmt_diff(versus)}; no adaptive baseline finished to compare overheads")
    outcome = _direction(versus.mean, versus.p)
    if math.isfinite(ratio) and not overhead_ok:
        outcome = NOT_REPRODUCED
    elif not math.isfinite(ratio) and outcome == REPRODUCED:
        outcome = NOT_SIGNIFICANT   # half the claim unmeasured
    return Verdict("rnb_best", task, outcome, line)


SILHOUETTE_CHOICE = "stratified-regroup"   # stratified at the k Regroup chose: one more point of the sweep


def sweep(stats: dict[str, RowStats], rows: list[protocol.Row]) -> list[RowStats]:
    """The Fig. 2 rows with finished seeds, by k, and stratified at Regroup's own choice of k when
    that is another k (on text tasks, where the sweep is run)."""
    points = [stats[r.key] for r in rows if r.section == FIG2 and stats[r.key].seeds]
    chosen = stats.get(SILHOUETTE_CHOICE)
    if points and chosen is not None and chosen.seeds and chosen.k not in {p.k for p in points}:
        points.append(chosen)
    return sorted(points, key=lambda s: s.k)


def sweep_runs(runs: dict[str, list[RunResult]], rows: list[protocol.Row]) -> dict[str, list[RunResult]]:
    """`runs` with the sweep's rows (its k values and stratified at Regroup's k) cut to the seeds
    every one of them finished: k values are compared on the same seeds, also when some rows were
    given more seeds than others (`paper --rows`). The other rows are left as they are."""
    keys = [r.key for r in rows if r.section == FIG2] + [SILHOUETTE_CHOICE]
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
    needed = [r for r in rows if r.section == FIG2 or r.key in (SILHOUETTE_CHOICE, baseline)]
    return sweep(row_stats(swept, needed, baseline, None), needed), swept


def verdict_u_shape(task: str, points: list[RowStats], runs: dict[str, list[RunResult]]) -> Verdict:
    if len(points) < 3:
        return Verdict("u_shape", task, NOT_MEASURED, f"{len(points)} k values finished; a U needs 3")
    means = [p.summary["final_loss_mean"] for p in points]
    best = int(np.argmin(means))
    best_k = points[best].k
    if 0 < best < len(points) - 1:
        ends = [paired(runs[points[i].key], runs[points[best].key]) for i in (0, len(points) - 1)]
        higher = all(e.n >= 2 and e.mean > 0 and e.p < ALPHA for e in ends)
        line = (f"lowest loss at k = {best_k} (inside {points[0].k}–{points[-1].k}); k = {points[0].k} − k = {best_k}: "
                f"{_fmt_diff(ends[0])}; k = {points[-1].k} − k = {best_k}: {_fmt_diff(ends[1])}")
        return Verdict("u_shape", task, REPRODUCED if higher else NOT_SIGNIFICANT, line)
    # The lowest loss is at an end of the sweep: monotone, unless the best inside k is as good.
    inner = min(range(1, len(points) - 1), key=lambda i: means[i])
    gap = paired(runs[points[best].key], runs[points[inner].key])
    line = (f"lowest loss at the end of the sweep, k = {best_k}; k = {best_k} − best inner k = {points[inner].k}: "
            f"{_fmt_diff(gap)}")
    return Verdict("u_shape", task, NOT_REPRODUCED if gap.n >= 2 and gap.mean < 0 and gap.p < ALPHA
                   else NOT_SIGNIFICANT, line)


@dataclass(frozen=True)
class Correlation:
    r: float
    p: float
    n: int

    @property
    def r2(self) -> float:
        return self.r ** 2


def silhouette_correlation(points: list[RowStats]) -> Correlation | None:
    """Pearson r between each k's silhouette and its mean final loss (None below 3 points)."""
    usable = [p for p in points if p.silhouette is not None and math.isfinite(p.silhouette)]
    if len(usable) < 3:
        return None
    from scipy import stats

    x = np.array([p.silhouette for p in usable])
    y = np.array([p.summary["final_loss_mean"] for p in usable])
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(math.nan, math.nan, len(usable))
    result = stats.pearsonr(x, y)
    return Correlation(float(result.statistic), float(result.pvalue), len(usable))


def verdict_silhouette(task: str, points: list[RowStats]) -> Verdict:
    corr = silhouette_correlation(points)
    if corr is None:
        return Verdict("silhouette", task, NOT_MEASURED, "fewer than 3 k values with a silhouette finished")
    line = (f"Pearson r(silhouette, final loss) = {corr.r:+.3f} (R² = {corr.r2:.3f}), {_fmt_p(corr.p)}, "
            f"over {corr.n} k values (expected: negative, better-separated clusters train better)")
    return Verdict("silhouette", task, _direction(corr.r, corr.p), line)


def verdict_image(task: str, stats: dict[str, RowStats], modality: str) -> Verdict:
    rnb = stats.get("rnb")
    if modality != "image-text":
        return Verdict("image", task, NOT_MEASURED, "a text task")
    if rnb is None or not rnb.loss.n:
        return Verdict("image", task, NOT_MEASURED, "no finished paired seeds")
    if rnb.metric is not None and rnb.metric.n:
        return Verdict("image", task, _direction(rnb.metric.mean, rnb.metric.p, expected_negative=False),
                       f"R&B − stratified (regrouped, k = {rnb.k}) retrieval top-1: {_fmt_diff(rnb.metric)}; "
                       f"eval loss: {_fmt_diff(rnb.loss)}")
    return Verdict("image", task, _direction(rnb.loss.mean, rnb.loss.p),
                   f"R&B − stratified eval loss (no retrieval metric recorded): {_fmt_diff(rnb.loss)}")


def verdicts(task: str, stats: dict[str, RowStats], runs: dict[str, list[RunResult]], rows: list[protocol.Row],
             baseline: str, ood: bool, modality: str) -> list[Verdict]:
    """One verdict per claim that applies to the task (the image claim on image-text tasks, the
    others on text tasks)."""
    if modality == "image-text":
        return [verdict_image(task, stats, modality)]
    points, swept = sweep_on_common_seeds(runs, rows, baseline)
    return [verdict_regroup(task, stats, ood, modality), verdict_rnb_best(task, stats, runs, baseline),
            verdict_u_shape(task, points, swept), verdict_silhouette(task, points)]


def estimator_comparison(stats: dict[str, RowStats], runs: dict[str, list[RunResult]]) -> str | None:
    """Issue 13's extension: R&B with the unbiased Gram against the paper's estimator, same seeds."""
    if not runs.get("rnb-unbiased") or not runs.get("rnb"):
        return None
    return f"R&B unbiased Gram − paper Gram: {_fmt_diff(paired(runs['rnb-unbiased'], runs['rnb']))}"


SECTION_ROWS = (TABLE1, IMAGE)   # the sections whose rows are plotted against stratified
