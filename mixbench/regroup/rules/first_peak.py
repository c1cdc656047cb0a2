"""first-peak: the first local maximum of the silhouette over k, scanning up from the smallest k.

On data rich in near-duplicates (templated prompts, one problem answered by many sources) the
silhouette keeps rising with k, and its global maximum sits at the top of any range, where the
loss of a mixture trained on the clusters is worse (issue 30: on champ, evals-id and evals-ood
silhouette picked 62-64 of 2..64 while the loss was lowest at 4-16). The first peak is the
coarsest clustering that silhouette (Rousseeuw 1987) prefers to its neighbour; like the gap
statistic's rule (Tibshirani et al. 2001), it takes the smallest k that is locally best rather than
the global optimum of a criterion that drifts with k.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixbench.k_rule import scored_rows
from mixbench.regroup.rules.silhouette import Silhouette


@dataclass(kw_only=True, eq=False)
class FirstPeak(Silhouette):
    """The first local maximum of the silhouette over k (the top of the range if it never falls)."""

    source = "Rousseeuw 1987 (silhouette), read as the first local maximum over k"

    def choose(self, curve: list[dict]) -> int:
        scored = scored_rows(curve, self.reads)
        if not scored:
            return curve[0]["k"]
        for row, after in zip(scored, scored[1:]):
            if row["silhouette"] > after["silhouette"]:
                return row["k"]
        return scored[-1]["k"]
