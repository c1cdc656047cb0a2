"""silhouette: the k whose clustering has the highest mean silhouette (R&B's rule, paper Alg. 2).

The silhouette of a point is (b − a) / max(a, b), with a its mean distance to the other points of
its cluster and b its mean distance to the points of the nearest other cluster (Rousseeuw 1987,
"Silhouettes: a graphical aid to the interpretation and validation of cluster analysis", J.
Comput. Appl. Math. 20). It is measured on the scoring sample (it costs O(s²)).
"""

from __future__ import annotations

from dataclasses import dataclass

from mixbench.k_rule import BestScore, Clustered


@dataclass(kw_only=True, eq=False)
class Silhouette(BestScore):
    """The highest mean silhouette (the paper's rule; ties to the smaller k)."""

    reads = "silhouette"
    source = "Ge et al. 2025 (R&B, arXiv 2505.00358) Alg. 2; Rousseeuw 1987"

    def measure(self, clustering: Clustered) -> dict[str, float | None]:
        from sklearn.metrics import silhouette_score

        if len(set(clustering.labels.tolist())) < 2:
            return {"silhouette": None}
        return {"silhouette": float(silhouette_score(clustering.points, clustering.labels))}
