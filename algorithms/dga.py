"""dga: Dynamic Gradient Alignment (Fan, Grangier, Ablin, "Dynamic Gradient Alignment for Online
Data Mixing", arXiv 2410.02498).

At each round end it buys one batch gradient per domain, g_i, and one from the target (the eval
set), g_t — extra forward + backward passes through the whole model. The domain weights take an
exponentiated-gradient step toward alignment with the target,

    w ← w ⊙ exp(η · a / max|a|),   a_i = <g_i, g_t>,

and the sampled mixture is smoothed toward them: p ← (1 − β)·p + β·w. The alignment scores are
scaled by their largest magnitude so η does not depend on the gradient norm of the model.

Defaults: η = 1.0 and β = 0.5 are our choices for short runs (DGA tunes its step size; it also
smooths with a moving average of the weights). Overhead in the paper's App. D:
6(1+δ)·D_t·N + 6·T·(D_e + m)·N — m + 1 batch gradients per round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixbench.mixture import Mixture
from mixbench.probe import Probe
from mixbench.simplex import exponentiated_update
from mixbench.strategy import MixingStrategy, RoundFeedback, RunContext, RunShape


def dga_weights(weights: np.ndarray, alignment: np.ndarray, eta: float) -> np.ndarray:
    """w ⊙ exp(η · a / max|a|), normalised; non-finite alignments count as 0."""
    alignment = np.where(np.isfinite(alignment), alignment, 0.0)
    scale = np.abs(alignment).max()
    return exponentiated_update(weights, alignment / scale if scale > 0 else alignment, eta)


@dataclass(kw_only=True, eq=False)
class DGA(MixingStrategy):
    """DGA: per-domain and target batch gradients each round; w ← w⊙exp(η·<g_i, g_target>), smoothed."""

    eta: float = 1.0
    smoothing: float = 0.5

    def check_params(self) -> None:
        if not (np.isfinite(self.eta) and self.eta > 0):
            raise ValueError(f"dga: eta must be positive, got {self.eta}")
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"dga: smoothing must be in (0, 1], got {self.smoothing}")

    def start(self, ctx: RunContext) -> Mixture:
        self.check_params()
        self.weights_ = np.full(ctx.num_domains, 1.0 / ctx.num_domains)
        self.mixture_ = Mixture(self.weights_)
        return self.mixture_

    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        target = probe.gradient(None)
        alignment = np.array([float(probe.gradient(i) @ target) for i in range(len(self.weights_))])
        probe.charge("alignment", 2.0 * alignment.size * target.size)
        self.weights_ = dga_weights(self.weights_, alignment, self.eta)
        p = (1 - self.smoothing) * self.mixture_.weights + self.smoothing * self.weights_
        self.mixture_ = Mixture(p / p.sum())
        return self.mixture_

    def paper_overhead_flops(self, shape: RunShape) -> float:
        """App. D: 6·T·(D_e + m)·N, read as one target batch plus one batch per domain each
        round, forward and backward (6 FLOPs per parameter per token). The meter counts the
        same over T − 1 updates (none after the last round), plus the m inner products."""
        return float(6 * shape.rounds * (shape.num_domains + 1) * shape.batch_tokens * shape.num_params)
