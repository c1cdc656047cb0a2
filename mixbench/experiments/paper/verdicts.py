"""The verdicts on the paper's claims: each claim's pre-registered tests on a task's runs, then one
decision over every test of the report, Holm-adjusted.

`findings(...)` measures each claim that applies to a task: the tests (raw p, beside the exact
sign-flip p and a bootstrap interval of the relative change) and the rule that turns them into an
outcome. `decide(findings)` adjusts every test's p by Holm–Bonferroni over the whole family (all
claims of all tasks of one report) and decides each claim on the adjusted p at α:

    reproduced       the paper's direction, significant after adjustment (R&B ≤ the best baseline:
                     R&B's difference significantly below the margin; U-shape: both ends above the best k)
    not reproduced   the opposite direction, significant after adjustment (the overhead claim
                     also when R&B's overhead exceeds 1/100 of the cheapest adaptive baseline's)
    not significant at these seeds   neither
    not measured     the claim does not apply, or nothing finished to measure it

The same code decides the exploratory verdicts (every seed run, registered or not), in a family of
their own, labelled as such by the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from mixbench.experiments.paper import protocol, significance
from mixbench.experiments.paper.protocol import ADAPTIVE_BASELINES, ALPHA
from mixbench.experiments.paper.stats import Paired, RowStats, paired, sweep_on_common_seeds
from mixbench.experiments.results import RunResult

REPRODUCED, NOT_REPRODUCED, NOT_SIGNIFICANT = "reproduced", "not reproduced", "not significant at these seeds"
NOT_MEASURED = "not measured"
# How a claim's tests decide it.
DIRECTION, U_INNER, U_END = "direction", "u-inner", "u-end"
HALF_MEASURED = "half-measured"   # a claim with a part nothing measured: never reproduced, but can fail


@dataclass(frozen=True)
class Test:
    """One pre-registered test: what it compares, its raw p, and (after `decide`) its Holm-adjusted p."""

    what: str                          # e.g. "R&B − stratified on the same regrouped domains"
    p: float                           # raw
    effect: float                      # the signed estimate (a mean difference, or ρ)
    expected: int                      # the paper's direction: −1 a negative effect (lower loss), +1 positive
    estimate: Paired | None = None     # the paired differences, for paired tests
    sign_flip: float = math.nan        # the exact sign-flip p of the same differences
    statistic: str = "paired t"
    adjusted: float = math.nan

    def line(self) -> str:
        """One phrase: the estimate with its interval, the raw and adjusted p, the sign-flip p, n."""
        adjusted = f"Holm-adjusted {_p(self.adjusted)}" if math.isfinite(self.adjusted) else "not adjusted"
        if self.estimate is None:
            return f"{self.what} = {self.effect:+.3f}, {self.statistic} p = {_p(self.p)} ({adjusted})"
        e = self.estimate
        if not e.n:
            return f"{self.what}: no paired seeds"
        low, high = e.relative_interval()
        interval = f", 95 % CI [{100 * low:+.2f}, {100 * high:+.2f}] %" if math.isfinite(low) else ""
        return (f"{self.what}: {e.mean:+.4f} ({100 * e.relative:+.2f} %{interval}), {self.statistic} p = {_p(self.p)} "
                f"({adjusted}), sign-flip p = {_p(self.sign_flip)}, {e.n} paired seeds")

    def to_dict(self) -> dict:
        return {"what": self.what, "statistic": self.statistic, "p": self.p, "adjusted": self.adjusted,
                "sign_flip": self.sign_flip, "effect": self.effect, "line": self.line()}


@dataclass(frozen=True)
class Finding:
    """A claim measured on a task, before adjustment."""

    claim: str
    task: str
    tests: tuple[Test, ...] = ()
    rule: str = DIRECTION
    note: str = ""                      # what else the verdict line says (the overhead bound, the best k)
    fixed: str | None = None            # an outcome the tests cannot change (not measured; the overhead bound)


@dataclass(frozen=True)
class Verdict:
    claim: str          # protocol.Claim key
    task: str
    outcome: str        # REPRODUCED | NOT_REPRODUCED | NOT_SIGNIFICANT | NOT_MEASURED
    measured: str       # one line: what was measured here
    tests: tuple[Test, ...] = field(default=())

    def to_dict(self) -> dict:
        return {"claim": self.claim, "task": self.task, "outcome": self.outcome, "measured": self.measured,
                "tests": [t.to_dict() for t in self.tests]}

    @classmethod
    def from_dict(cls, values: dict) -> Verdict:
        """A verdict as first looked at (paper.json keeps them): its line, not its numbers' objects."""
        return cls(values["claim"], values["task"], values["outcome"], values["measured"])


def decide(found: list[Finding]) -> list[Verdict]:
    """Every finding's tests Holm-adjusted as one family, and each claim decided on them."""
    tests = [t for f in found for t in f.tests]
    adjusted = iter(significance.holm([t.p for t in tests]))
    out = []
    for f in found:
        done = tuple(replace(t, adjusted=next(adjusted)) for t in f.tests)
        outcome = f.fixed or _outcome(f.rule, done)
        lines = [t.line() for t in done] + ([f.note] if f.note else [])
        out.append(Verdict(f.claim, f.task, outcome, "; ".join(lines) or "nothing to measure", done))
    return out


def _outcome(rule: str, tests: tuple[Test, ...]) -> str:
    significant = [math.isfinite(t.adjusted) and t.adjusted < ALPHA and t.effect != 0 for t in tests]
    if not tests:
        return NOT_MEASURED
    if rule == U_INNER:   # both ends above the best inner k
        return REPRODUCED if all(significant) and all(t.effect > 0 for t in tests) else NOT_SIGNIFICANT
    if rule == U_END:     # the best k at an end of the sweep, below the best inner one: monotone
        return NOT_REPRODUCED if significant[0] and tests[0].effect < 0 else NOT_SIGNIFICANT
    test = tests[0]
    if not significant[0]:
        return NOT_SIGNIFICANT
    if np.sign(test.effect) != test.expected:
        return NOT_REPRODUCED
    return NOT_SIGNIFICANT if rule == HALF_MEASURED else REPRODUCED


def paired_test(what: str, estimate: Paired, expected: int = -1) -> Test:
    return Test(what, estimate.p, estimate.mean, expected, estimate, estimate.sign_flip_p)


# -- the claims ---------------------------------------------------------------------------------------

def finding_regroup(task: str, stats: dict[str, RowStats], ood: bool, modality: str) -> Finding:
    row = stats.get("stratified-regroup")
    if modality != "text" or ood or row is None or "stratified" not in stats:
        why = ("eval domains are unseen in training, so nothing trains on the original ones" if ood
               else "the paper has no original domains for its image-text data")
        return Finding("regroup", task, fixed=NOT_MEASURED, note=f"not possible here: {why}")
    if not row.loss.n:
        return Finding("regroup", task, fixed=NOT_MEASURED, note="no finished paired seeds")
    return Finding("regroup", task, (paired_test(
        f"stratified on regrouped domains (k {_k_range(row)}) − on original ones", row.loss),))


def finding_balance(task: str, runs: dict[str, list[RunResult]], modality: str) -> Finding:
    """R&B against stratified on the same regrouped domains (same seeds, so the same clusterings):
    what Balance adds beyond Regroup. On image-text this is the image claim itself."""
    if modality != "text":
        return Finding("balance", task, fixed=NOT_MEASURED, note="image-text: see the image claim (the same rows)")
    estimate = paired(runs.get("rnb", []), runs.get("stratified-regroup", []))
    if not estimate.n:
        return Finding("balance", task, fixed=NOT_MEASURED, note="no finished paired seeds")
    return Finding("balance", task, (paired_test("R&B − stratified on the same regrouped domains", estimate),))


def finding_rnb_best(task: str, stats: dict[str, RowStats], runs: dict[str, list[RunResult]],
                     baseline: str) -> Finding:
    """R&B against the best baseline, chosen on the seeds it shares with R&B (the one ahead of R&B by
    the most on them), tested against the non-inferiority margin; and R&B's overhead against the
    cheapest adaptive baseline's."""
    rnb = stats.get("rnb")
    candidates = {k: paired(runs.get("rnb", []), runs[k]) for k in (baseline, *ADAPTIVE_BASELINES)
                  if k in runs and stats.get(k) is not None and stats[k].seeds}
    candidates = {k: e for k, e in candidates.items() if e.n}
    if rnb is None or not rnb.seeds or not candidates:
        return Finding("rnb_best", task, fixed=NOT_MEASURED, note="R&B or the baselines have no paired seeds")
    best = max(candidates, key=lambda k: candidates[k].mean)   # rnb − candidate: the largest is the hardest
    versus = candidates[best]
    margin = protocol.NONINFERIORITY_MARGIN * versus.base_mean
    test = Test(f"R&B − best baseline ({best})", significance.margin_test_p(versus.diffs, margin),
                versus.mean - margin, -1, versus, versus.sign_flip_p,
                statistic=f"t against the {protocol.NONINFERIORITY_MARGIN:.0%} margin ({margin:+.4f})")
    overheads = {k: stats[k].summary.get("overhead_flops_pct", math.nan) for k in ADAPTIVE_BASELINES
                 if k in stats and stats[k].seeds}
    rnb_overhead = rnb.summary.get("overhead_flops_pct", math.nan)
    cheapest = min(overheads.values(), default=math.nan)
    ratio = rnb_overhead / cheapest if cheapest and math.isfinite(cheapest) else math.nan
    if not math.isfinite(ratio):   # half the claim unmeasured: never reproduced
        return Finding("rnb_best", task, (test,), HALF_MEASURED, "no adaptive baseline finished to compare overheads")
    note = (f"R&B overhead {rnb_overhead:.3g} % of training FLOPs, {ratio:.2g}× the cheapest adaptive "
            f"baseline's ({cheapest:.3g} %)")
    return Finding("rnb_best", task, (test,), DIRECTION, note, None if ratio <= 0.01 else NOT_REPRODUCED)


def finding_u_shape(task: str, points: list[RowStats], runs: dict[str, list[RunResult]]) -> Finding:
    if len(points) < 3:
        return Finding("u_shape", task, fixed=NOT_MEASURED, note=f"{len(points)} k values finished; a U needs 3")
    means = [p.summary["final_loss_mean"] for p in points]
    best = int(np.argmin(means))
    best_k = points[best].k
    if 0 < best < len(points) - 1:
        tests = tuple(paired_test(f"k = {points[i].k} − k = {best_k}", paired(runs[points[i].key],
                                                                             runs[points[best].key]), expected=1)
                      for i in (0, len(points) - 1))
        return Finding("u_shape", task, tests, U_INNER,
                       f"lowest mean loss at k = {best_k} (inside {points[0].k}–{points[-1].k})")
    inner = min(range(1, len(points) - 1), key=lambda i: means[i])
    test = paired_test(f"k = {best_k} − best inner k = {points[inner].k}",
                       paired(runs[points[best].key], runs[points[inner].key]), expected=1)
    return Finding("u_shape", task, (test,), U_END, f"lowest mean loss at the end of the sweep, k = {best_k}")


def finding_silhouette(task: str, points: list[RowStats]) -> Finding:
    """Spearman's ρ between each registered k's mean silhouette (each seed its own clustering) and
    its mean final loss: distinct clusterings only (the fixed k values), never Regroup's choice."""
    usable = [p for p in points if p.silhouette is not None and math.isfinite(p.silhouette)]
    if len(usable) < 3:
        return Finding("silhouette", task, fixed=NOT_MEASURED, note="fewer than 3 k values with a silhouette finished")
    rho, p = significance.spearman_exact([q.silhouette for q in usable], [q.summary["final_loss_mean"] for q in usable])
    test = Test(f"Spearman ρ(silhouette, final loss) over {len(usable)} k values", p, rho, -1,
                statistic="exact permutation")
    return Finding("silhouette", task, (test,), note="expected negative: better-separated clusters train better")


def finding_image(task: str, stats: dict[str, RowStats], modality: str) -> Finding:
    rnb = stats.get("rnb")
    if modality != "image-text":
        return Finding("image", task, fixed=NOT_MEASURED, note="a text task")
    if rnb is None or not rnb.loss.n:
        return Finding("image", task, fixed=NOT_MEASURED, note="no finished paired seeds")
    if rnb.metric is not None and rnb.metric.n:
        return Finding("image", task, (paired_test(f"R&B − stratified (regrouped, k {_k_range(rnb)}) retrieval "
                                                   "top-1", rnb.metric, expected=1),),
                       note=f"eval loss {_loss_phrase(rnb.loss)}")
    return Finding("image", task, (paired_test("R&B − stratified eval loss (no retrieval metric recorded)",
                                               rnb.loss),))


def findings(task: str, stats: dict[str, RowStats], runs: dict[str, list[RunResult]], rows: list[protocol.Row],
             baseline: str, ood: bool, modality: str) -> list[Finding]:
    """One finding per claim that applies to the task (the image claim on image-text tasks, the
    others on text tasks)."""
    if modality == "image-text":
        return [finding_image(task, stats, modality)]
    points, swept = sweep_on_common_seeds(runs, rows, baseline)
    return [finding_regroup(task, stats, ood, modality), finding_balance(task, runs, modality),
            finding_rnb_best(task, stats, runs, baseline), finding_u_shape(task, points, swept),
            finding_silhouette(task, points)]


def estimator_comparison(runs: dict[str, list[RunResult]]) -> str | None:
    """Issue 13's extension: R&B with the unbiased Gram against the paper's estimator, same seeds
    (descriptive: not a claim of the paper, so not in the family)."""
    if not runs.get("rnb-unbiased") or not runs.get("rnb"):
        return None
    return paired_test("R&B unbiased Gram − paper Gram", paired(runs["rnb-unbiased"], runs["rnb"])).line()


def _k_range(row: RowStats) -> str:
    ks = sorted(set(row.ks)) or ([row.k] if row.k else [])
    if not ks:
        return "—"
    return f"= {ks[0]}" if len(ks) == 1 else f"{ks[0]}–{ks[-1]} over seeds"


def _loss_phrase(estimate: Paired) -> str:
    return f"{estimate.mean:+.4f} ({100 * estimate.relative:+.2f} %), p = {_p(estimate.p)}" if estimate.n else "—"


def _p(p: float) -> str:
    return "—" if not math.isfinite(p) else f"{p:.3g}"
