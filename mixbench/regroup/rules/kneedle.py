"""kneedle: the knee of the inertia curve, where adding clusters stops paying (the elbow).

Kneedle (Satopää, Albrecht, Irwin & Raghavan 2011, "Finding a 'Kneedle' in a Haystack: Detecting
Knee Points in System Behavior", ICDCS workshops), offline, as its paper gives it: scale k and the
inertia to [0, 1]; inertia falls with k and flattens (convex, decreasing), so flip it to a rising
concave curve and take the difference curve D = (1 − inertia) − k above the diagonal; every local
maximum of D is a candidate, with threshold T = D − S · (mean step of the scaled k); the knee is
the first candidate after which D drops below its T before the next local maximum. With
sensitivity S = 1, the paper's default. If no candidate qualifies, the highest point of D.
No smoothing: the inertia of k-means fits is already monotone up to noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixbench.k_rule import KRule


@dataclass(kw_only=True, eq=False)
class Kneedle(KRule):
    """The knee of the inertia curve over k (Kneedle, offline; sensitivity S)."""

    sensitivity: float = 1.0

    reads = "inertia"
    source = "Satopää, Albrecht, Irwin & Raghavan 2011 (Kneedle), ICDCS workshops"

    def choose(self, curve: list[dict]) -> int:
        ks = np.array([row["k"] for row in curve], dtype=np.float64)
        if len(ks) < 3:
            return int(ks[0])
        return int(ks[knee(ks, np.array([row["inertia"] for row in curve], dtype=np.float64), self.sensitivity)])


def knee(x: np.ndarray, y: np.ndarray, sensitivity: float) -> int:
    """Index of the knee of the decreasing convex curve y(x) (x ascending)."""
    x_scaled = (x - x[0]) / (x[-1] - x[0])
    span = y.max() - y.min()
    y_scaled = (y - y.min()) / span if span > 0 else np.zeros_like(y)
    difference = (1.0 - y_scaled) - x_scaled
    peaks = [i for i in range(1, len(x) - 1)
             if difference[i] >= difference[i - 1] and difference[i] > difference[i + 1]]
    step = float(np.mean(np.diff(x_scaled)))
    for n, peak in enumerate(peaks):
        threshold = difference[peak] - sensitivity * step
        end = peaks[n + 1] if n + 1 < len(peaks) else len(x)
        if np.any(difference[peak + 1:end] < threshold):
            return peak
    return int(np.argmax(difference))
