"""Claim 4 — Lemma 5: swapping points between two clusters gains at most max(0, (r_i + r_j − δ)/2).

Source: paper App. B (Lemma 5), as the issue states it. The appendix text was not available to us,
so the definitions below are ours, chosen to match the statement's form; the proof is ours.

Setting. Each training example x has a 1-d alignment value a_x (in R&B: how well its gradient
aligns with the eval gradient). A cluster C has centroid c = mean of its a_x and radius
r = max_{x∈C} |a_x − c|. For two clusters let i be the one with the higher centroid, δ = c_i − c_j ≥ 0.
Balance puts its mass on higher-centroid clusters, so a point of C_j with a higher alignment than a
point of C_i is misplaced. The regret of the pair is the most a single swap of x ∈ C_j with y ∈ C_i
gains per moved point:
    regret(C_i, C_j) = max(0, max_{x∈C_j, y∈C_i} (a_x − a_y) / 2).
Bound: a_x ≤ c_j + r_j and a_y ≥ c_i − r_i, so a_x − a_y ≤ r_i + r_j − δ, hence
    regret ≤ max(0, (r_i + r_j − δ) / 2).
Worst case (tightness): C_i = {c_i − r_i, c_i + r_i}, C_j = {c_j − r_j, c_j + r_j} (any symmetric
filling inside keeps the centroids); then x = c_j + r_j, y = c_i − r_i attain the bound exactly.

Check: random pairs of 1-d clusters (sizes 1–60; normal, uniform, exponential and two-point
shapes; random centres and scales, overlapping or not), pairs of k-means clusters of 1-d
alignment values, and the worst-case construction for random (r_i, r_j, δ). The regret is
computed by brute force over all pairs. Margin = (bound − regret) / (r_i + r_j); pass if ≥ −1e-12
everywhere. The worst margin is 0 because the construction attains the bound.

Overrides: `bound_fn=(r_i, r_j, delta) -> float` (a wrong bound) and `radius_fn=(values, centre) ->
float` (a wrong cluster radius, e.g. the standard deviation) make it fail.
"""

from __future__ import annotations

import numpy as np
from mixbench.theory.check import CheckResult

NAME = "lemma5"
CLAIM = "regret of swapping points between two clusters ≤ max(0, (r_i + r_j − δ)/2) (Lemma 5)"
TOLERANCE = 1e-12


def paper_bound(r_i: float, r_j: float, delta: float) -> float:
    return max(0.0, (r_i + r_j - delta) / 2.0)


def max_distance_radius(values: np.ndarray, centre: float) -> float:
    return float(np.abs(values - centre).max())


def swap_regret(higher: np.ndarray, lower: np.ndarray) -> float:
    """Brute force over every (x ∈ lower, y ∈ higher) swap: max(0, max (a_x − a_y)/2)."""
    return max(0.0, float((lower[:, None] - higher[None, :]).max()) / 2.0)


def margin(cluster_a, cluster_b, bound_fn, radius_fn) -> float:
    centre_a, centre_b = float(cluster_a.mean()), float(cluster_b.mean())
    higher, lower = (cluster_a, cluster_b) if centre_a >= centre_b else (cluster_b, cluster_a)
    c_i, c_j = float(higher.mean()), float(lower.mean())
    r_i, r_j = radius_fn(higher, c_i), radius_fn(lower, c_j)
    scale = max(max_distance_radius(higher, c_i) + max_distance_radius(lower, c_j), 1e-12)
    return (bound_fn(r_i, r_j, c_i - c_j) - swap_regret(higher, lower)) / scale


def random_cluster(rng) -> np.ndarray:
    n, centre, scale = int(rng.integers(1, 61)), rng.normal(0.0, 2.0), rng.lognormal(0.0, 0.7)
    shape = rng.integers(4)
    if shape == 0:
        offsets = rng.normal(size=n)
    elif shape == 1:
        offsets = rng.uniform(-1, 1, size=n)
    elif shape == 2:
        offsets = rng.exponential(size=n) * rng.choice([-1, 1])  # skewed: far tail on one side
    else:
        offsets = rng.choice([-1.0, 1.0], size=n)
    return centre + scale * offsets


def kmeans_cluster_pairs(rng) -> list[tuple[np.ndarray, np.ndarray]]:
    """Alignments a_x = ⟨∇ℓ_x(θ), g_q⟩ of a least-squares model, split by 1-d k-means."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    n, d = 300, 5
    x = rng.normal(size=(n, d)) + rng.normal(size=(1, d))
    y = x @ rng.normal(size=d) + rng.normal(size=n)
    theta = rng.normal(size=d)
    per_example = x * (x @ theta - y)[:, None]
    alignment = per_example @ per_example[: n // 3].mean(0)  # eval gradient: a third of the data
    with threadpool_limits(limits=1):  # tiny problem: OpenMP threads only spin
        labels = KMeans(n_clusters=4, n_init=3, random_state=int(rng.integers(1 << 30))).fit_predict(alignment[:, None])
    clusters = [alignment[labels == k] for k in range(4) if np.any(labels == k)]
    return [(a, b) for i, a in enumerate(clusters) for b in clusters[i + 1:]]


def worst_case_pair(rng) -> tuple[np.ndarray, np.ndarray]:
    r_i, r_j = rng.lognormal(0.0, 0.5, size=2)
    delta = rng.uniform(0.0, 1.5) * (r_i + r_j)  # both overlapping (regret > 0) and separated
    c_i = rng.normal()
    fill = int(rng.integers(0, 5))  # symmetric inner points keep centroid and radius
    inner_i, inner_j = rng.uniform(-1, 1, size=fill), rng.uniform(-1, 1, size=fill)
    higher = c_i + r_i * np.concatenate([[-1.0, 1.0], inner_i, -inner_i])
    lower = c_i - delta + r_j * np.concatenate([[-1.0, 1.0], inner_j, -inner_j])
    return higher, lower


def run(quick: bool, seed: int = 0, bound_fn=paper_bound, radius_fn=max_distance_radius) -> CheckResult:
    rng = np.random.default_rng([seed, 4])
    counts = {"random": 300, "kmeans": 3, "worst_case": 100} if quick else \
        {"random": 5000, "kmeans": 40, "worst_case": 2000}
    margins = {"random": [margin(random_cluster(rng), random_cluster(rng), bound_fn, radius_fn)
                          for _ in range(counts["random"])],
               "kmeans": [margin(a, b, bound_fn, radius_fn)
                          for _ in range(counts["kmeans"]) for a, b in kmeans_cluster_pairs(rng)],
               "worst_case": [margin(*worst_case_pair(rng), bound_fn, radius_fn)
                              for _ in range(counts["worst_case"])]}
    worst = {family: float(min(values)) for family, values in margins.items()}
    everything = np.concatenate([np.asarray(v) for v in margins.values()])
    finite = bool(np.all(np.isfinite(everything)))
    overall = float(everything.min()) if finite else float("nan")
    return CheckResult(
        name=NAME, claim=CLAIM, instances=int(everything.size), passed=bool(finite and overall >= -TOLERANCE),
        worst_margin=overall,
        details={"pass_if": f"(bound - regret) / (r_i + r_j) >= -{TOLERANCE:g} on every pair",
                 "worst_by_family": worst, "pairs_by_family": {k: len(v) for k, v in margins.items()},
                 "pairs_violating": int((everything < -TOLERANCE).sum()) if finite else int(everything.size)},
    )
