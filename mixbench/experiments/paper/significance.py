"""The statistical tests behind the paper report's verdicts, as plain functions of numbers.

    paired_t_p(d)                   two-sided paired t-test of the per-seed differences d (row − other)
    sign_flip_p(d)                  exact two-sided sign-flip (permutation) test of the same differences
    margin_test_p(d, margin)        two-sided paired t-test of mean(d) against a margin (below it: no
                                    worse than the other by more than the margin; above: worse)
    bootstrap_interval(d, base)     percentile interval of mean(d) / mean(base) over seeds resampled in pairs
    spearman_exact(x, y)            Spearman's ρ with its exact two-sided permutation p (small n)
    holm(p)                         Holm–Bonferroni adjusted p-values of one family of tests

Each works on a few seeds: NaN where a test has nothing to say (fewer than two seeds, no spread
in either direction it needs), never an exception. The report's verdicts are decided on Holm-
adjusted p-values over every confirmatory test of the report.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

# Beyond this many seeds the sign-flip test draws random sign vectors instead of enumerating all 2^n.
EXACT_SIGN_FLIPS = 20
RANDOM_SIGN_FLIPS = 200_000


def paired_t_p(diffs) -> float:
    """Two-sided paired t-test p-value of `diffs` (NaN below two; when every difference is the same,
    1 if they are 0 and 0 otherwise: the difference is then exact)."""
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return math.nan
    if np.all(d == d[0]):
        return 1.0 if d[0] == 0 else 0.0
    from scipy import stats

    return float(stats.ttest_1samp(d, 0.0).pvalue)


def sign_flip_p(diffs, seed: int = 0) -> float:
    """Exact two-sided sign-flip test: under H0 (no difference) each seed's difference is as likely
    negative as positive, so p is the share of the 2^n sign patterns whose mean is at least as far
    from 0 as the observed one (the observed pattern included: p ≥ 2/2^n). Above EXACT_SIGN_FLIPS
    seeds, a seeded Monte-Carlo estimate of the same share. NaN below two seeds."""
    d = np.asarray(diffs, dtype=float)
    n = d.size
    if n < 2:
        return math.nan
    observed = abs(d.sum())
    if n <= EXACT_SIGN_FLIPS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))            # (2^n, n)
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(RANDOM_SIGN_FLIPS, n))
    sums = np.abs(signs @ d)
    # A relative tolerance so that patterns equal to the observed one up to rounding count as equal.
    return float(np.mean(sums >= observed * (1 - 1e-12) - 1e-15))


def margin_test_p(diffs, margin: float) -> float:
    """Two-sided paired t-test of H0: mean(diffs) = margin. Significantly below the margin is
    non-inferiority (the row is worse than the other by less than `margin`, in the units of the
    differences, or better); significantly above it, inferiority by more than the margin. NaN below
    two seeds."""
    return paired_t_p(np.asarray(diffs, dtype=float) - margin)


def bootstrap_interval(diffs, base, level: float = 0.95, resamples: int = 10_000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the relative change mean(diffs) / mean(base), resampling
    the seeds with replacement and keeping each seed's pair together. NaN below two seeds."""
    d, b = np.asarray(diffs, dtype=float), np.asarray(base, dtype=float)
    if d.size < 2 or d.size != b.size:
        return math.nan, math.nan
    picks = np.random.default_rng(seed).integers(d.size, size=(resamples, d.size))   # (R, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = d[picks].mean(axis=1) / b[picks].mean(axis=1)
    relative = relative[np.isfinite(relative)]
    if relative.size == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2
    low, high = np.quantile(relative, [tail, 1 - tail])
    return float(low), float(high)


def spearman_exact(x, y) -> tuple[float, float]:
    """Spearman's rank correlation of x and y (average ranks for ties) and its two-sided p: the
    share of the n! orderings of y whose |ρ| is at least the observed one, enumerated (n ≤ 8) or
    drawn (seeded). NaN below three points or when either side is constant."""
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = x.size
    if n < 3 or n != y.size or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    rx, ry = stats.rankdata(x), stats.rankdata(y)

    def rho(ranks_y: np.ndarray) -> np.ndarray:   # (..., n) → (...,)
        cx = rx - rx.mean()
        cy = ranks_y - ranks_y.mean(axis=-1, keepdims=True)
        return (cy @ cx) / (np.sqrt((cx ** 2).sum()) * np.sqrt((cy ** 2).sum(axis=-1)))

    observed = float(rho(ry))
    if n <= 8:
        orders = np.array(list(itertools.permutations(ry)))
    else:
        rng = np.random.default_rng(0)
        orders = np.array([rng.permutation(ry) for _ in range(100_000)])
    p = float(np.mean(np.abs(rho(orders)) >= abs(observed) * (1 - 1e-12) - 1e-15))
    return observed, p


def holm(pvalues) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given: with the m finite p-values sorted
    ascending p_(1) ≤ … ≤ p_(m), p̃_(i) = max over j ≤ i of min(1, (m − j + 1)·p_(j)). A test is
    rejected at level α when its adjusted p is below α; this controls the family-wise error rate
    at α for any dependence between the tests. NaN stays NaN and does not count in m."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    running = 0.0
    for rank, i in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()
