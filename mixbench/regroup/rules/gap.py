"""gap: the gap statistic's rule (Tibshirani, Walther & Hastie 2001, "Estimating the number of
clusters in a data set via the gap statistic", JRSS B 63(2)).

Gap(k) = E*[log W*_k] − log W_k, with W_k the within-cluster sum of squares of the data under the
k-clustering and E* its mean over B reference sets drawn uniformly from the box aligned with the
data's principal components (the paper's reference (b)); s_k = sd_k · sqrt(1 + 1/B). The chosen k is
the smallest with Gap(k) ≥ Gap(k') − s_k', k' the next k swept; if none is, the k of the largest gap.

Measured on the first `points` of the scoring sample (itself a random sample), with the same B
reference sets for every k (drawn from the run's seed), each clustered by k-means (one start,
one thread: small fits run faster alone than contending for the cores).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixbench.k_rule import Clustered, KRule, scored_rows


@dataclass(kw_only=True, eq=False)
class Gap(KRule):
    """The gap statistic: the smallest k within one standard error of the next k's gap."""

    references: int = 5     # B, reference sets per k
    points: int = 500       # sample points measured (and in each reference set)

    reads = "gap"
    source = "Tibshirani, Walther & Hastie 2001, JRSS B 63(2)"

    def measure(self, clustering: Clustered) -> dict[str, float | None]:
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits

        x = np.asarray(clustering.points[: self.points], dtype=np.float64)
        labels = clustering.labels[: self.points]
        k = clustering.k
        if len(set(labels.tolist())) < 2 or k >= len(x):
            return {"gap": None, "gap_s": None}
        observed = np.log(within_dispersion(x, labels))
        with threadpool_limits(1):
            reference = np.array([np.log(KMeans(n_clusters=k, n_init=1, random_state=clustering.seed + b)
                                         .fit(z).inertia_ + 1e-300)
                                  for b, z in enumerate(reference_sets(x, self.references, clustering.seed))])
        spread = float(reference.std()) * np.sqrt(1.0 + 1.0 / self.references)
        return {"gap": float(reference.mean() - observed), "gap_s": spread}

    def choose(self, curve: list[dict]) -> int:
        scored = scored_rows(curve, "gap")
        if not scored:
            return curve[0]["k"]
        for row, after in zip(scored, scored[1:]):
            if row["gap"] >= after["gap"] - after["gap_s"]:
                return row["k"]
        return max(scored, key=lambda row: (row["gap"], -row["k"]))["k"]


def within_dispersion(x: np.ndarray, labels: np.ndarray) -> float:
    """W_k: the sum over clusters of squared distances to the cluster's own mean."""
    total = 0.0
    for label in np.unique(labels):
        members = x[labels == label]
        total += float(((members - members.mean(0)) ** 2).sum())
    return max(total, 1e-300)


def reference_sets(x: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    """`count` sets of len(x) points, uniform over the box the data spans along its principal axes."""
    centre = x.mean(0)
    _, _, axes = np.linalg.svd(x - centre, full_matrices=False)   # (r, d) principal directions
    projected = (x - centre) @ axes.T
    low, high = projected.min(0), projected.max(0)
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, size=projected.shape) @ axes + centre for _ in range(count)]
