"""davies-bouldin: the k with the lowest Davies-Bouldin index.

For each cluster, the worst ratio (s_i + s_j) / d(c_i, c_j) over the other clusters, with s the mean
distance of a cluster's points to its centroid and d the distance between centroids; the index is
its mean over clusters: small when clusters are tight and far apart (Davies & Bouldin 1979, "A
cluster separation measure", IEEE TPAMI 1(2)). Measured on the scoring sample.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixbench.k_rule import BestScore, Clustered


@dataclass(kw_only=True, eq=False)
class DaviesBouldin(BestScore):
    """The lowest Davies-Bouldin index (tight, well separated clusters)."""

    reads = "davies_bouldin"
    higher_is_better = False
    source = "Davies & Bouldin 1979, IEEE TPAMI 1(2)"

    def measure(self, clustering: Clustered) -> dict[str, float | None]:
        from sklearn.metrics import davies_bouldin_score

        if len(set(clustering.labels.tolist())) < 2:
            return {"davies_bouldin": None}
        return {"davies_bouldin": float(davies_bouldin_score(clustering.points, clustering.labels))}
