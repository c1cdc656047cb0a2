"""The KRule contract: how Regroup picks its k from a sweep of k-means clusterings.

k rules are plugins like strategies (entry-point group `mixbench.k_rules`). Regroup fits k-means
for every k of the range, and for each k shows every registered rule the same `Clustered` view
— a declared, seeded sample of the training points, their clusters and the centroids — and
records what each rule measures there. Then the rule the user named picks k from the recorded
curve. Every rule's numbers are recorded whichever rule chooses, so the rules can be compared
later from one sweep (the regroup cache and `mixbench regroup`'s JSON keep them).

A rule that only chooses differently from numbers another rule measures (first-peak reads the
silhouette) subclasses that rule: a measure is computed once per k however many rules read it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from mixbench.plugin import Plugin


@dataclass(frozen=True)
class Clustered:
    """One k of the sweep, as the rules see it."""

    k: int
    points: np.ndarray      # (s, d) the scoring sample: a seeded random sample of the clustered points
    labels: np.ndarray      # (s,) the nearest centroid of each sample point
    centroids: np.ndarray   # (k, d)
    seed: int               # for a measure that draws (the gap statistic's reference sets)


class KRule(Plugin, ABC):
    """Base class of every k rule. `__init__` stores keyword options only (mixbench.plugin)."""

    # The recorded value the rule chooses from: its curve over k, as `mixbench regroup` prints it.
    # Every sweep records "inertia" (the sum of squared distances of every clustered point to its
    # centroid) and "smallest" (the smallest cluster's size); a rule's own measures add more.
    reads: ClassVar[str] = ""
    source: ClassVar[str] = ""   # the publication the rule comes from, for `mixbench list` and the docs

    def measure(self, clustering: Clustered) -> dict[str, float | None]:
        """This rule's numbers for one k (None where the clustering gives none, e.g. one cluster)."""
        return {}

    @abstractmethod
    def choose(self, curve: list[dict]) -> int:
        """The chosen k. `curve` holds one row per k swept, ascending, each {"k": k, "inertia",
        "smallest", and every rule's measures}; rows ruled out beforehand (clusters below the
        minimum size) are not in it. It is never empty."""


class BestScore(KRule):
    """A rule that takes the k with the best value of its own measure (`reads`), ties to the
    smaller k; a k where the measure has no value is passed over (the smallest k if none has)."""

    higher_is_better: ClassVar[bool] = True

    def choose(self, curve: list[dict]) -> int:
        scored = scored_rows(curve, self.reads)
        if not scored:
            return curve[0]["k"]
        sign = 1.0 if self.higher_is_better else -1.0
        return max(scored, key=lambda row: (sign * row[self.reads], -row["k"]))["k"]


def scored_rows(curve: list[dict], name: str) -> list[dict]:
    """The rows of `curve` that have a value for `name`."""
    return [row for row in curve if row.get(name) is not None]
