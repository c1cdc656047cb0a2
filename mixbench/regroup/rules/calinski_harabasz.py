"""calinski-harabasz: the k with the highest Calinski-Harabasz index (variance ratio criterion).

(B / (k − 1)) / (W / (n − k)): the between-cluster dispersion per degree of freedom over the
within-cluster dispersion per degree of freedom (Caliński & Harabasz 1974, "A dendrite method for
cluster analysis", Communications in Statistics 3(1)). Measured on the scoring sample.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixbench.k_rule import BestScore, Clustered


@dataclass(kw_only=True, eq=False)
class CalinskiHarabasz(BestScore):
    """The highest Calinski-Harabasz index (between- over within-cluster dispersion)."""

    reads = "calinski_harabasz"
    source = "Caliński & Harabasz 1974, Communications in Statistics 3(1)"

    def measure(self, clustering: Clustered) -> dict[str, float | None]:
        from sklearn.metrics import calinski_harabasz_score

        distinct = len(set(clustering.labels.tolist()))
        if distinct < 2 or distinct >= len(clustering.labels):
            return {"calinski_harabasz": None}
        return {"calinski_harabasz": float(calinski_harabasz_score(clustering.points, clustering.labels))}
