"""rnb: the Balance step of R&B (Ge et al., "R&B: Domain Regrouping and Data Mixture Balancing
for Efficient Foundation Model Training", arXiv 2505.00358, Alg. 1/3).

Each round of K steps the trainer sums, per domain i, the gradient of the loss with respect to
the final linear layer (g_i, over n_i examples). At the round end:

    G_ij    = <g_i, g_j> / (n_i n_j)                  Gram of per-domain mean gradients
    p_{t+1} = softmax(λ · G q / ||G q||_2)            q = evaluation proportions

p is overwritten every round (no multiplicative accumulation). λ → 0 gives uniform, λ → ∞ the
argmax vertex of Gq. It is the closed-form maximiser over the simplex of
η qᵀG p − λ⁻¹ ||ηGq|| Σ p_i log p_i (paper App. B.1).

When the update is undefined — a domain drew no examples this round (its mean gradient does not
exist), G q is zero, or anything is non-finite — the previous mixture is kept and the reason is
logged. It never returns NaN.

Defaults: λ = 3 is the value the paper uses in its S1 runs. The round length K is the trainer's
`steps_per_round` (each task's budget sets it; see `mixbench list`).
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass

import numpy as np

from mixbench.mixture import Mixture
from mixbench.probe import Probe
from mixbench.simplex import softmax
from mixbench.strategy import MixingStrategy, RoundFeedback, RunContext, RunShape, Signal

log = logging.getLogger(__name__)


class UndefinedUpdate(ValueError):
    """The Balance update has no defined value for this round; the reason is the message."""


def gram_matrix(grad_sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """G_ij = <g_i, g_j> / (n_i n_j) for per-domain gradient sums g (m, D) and counts n (m,).

    Computed in float64. Raises UndefinedUpdate if a count is not positive (that domain's mean
    gradient does not exist).
    """
    grad_sums = np.asarray(grad_sums, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if grad_sums.ndim != 2 or counts.shape != (grad_sums.shape[0],):
        raise ValueError(f"expected sums (m, D) and counts (m,), got {grad_sums.shape} and {counts.shape}")
    if np.any(counts <= 0):
        missing = np.flatnonzero(counts <= 0).tolist()
        shown = ", ".join(map(str, missing[:8])) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise UndefinedUpdate(f"{len(missing)} domain(s) drew no examples this round ({shown})")
    means = grad_sums / counts[:, None]
    return means @ means.T


def balance_mixture(gram: np.ndarray, q: np.ndarray, lam: float) -> np.ndarray:
    """p = softmax(λ · G q / ||G q||_2).

    Raises UndefinedUpdate when G or q is non-finite or G q is zero (the normalisation would
    divide by zero, the NaN the paper reports for mismatched eval domains).
    """
    if not (np.isfinite(lam) and lam > 0):
        raise ValueError(f"lam must be a positive finite number, got {lam!r}")
    gram = np.asarray(gram, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if not (np.all(np.isfinite(gram)) and np.all(np.isfinite(q))):
        raise UndefinedUpdate("the Gram matrix or q has non-finite entries")
    gq = gram @ q
    norm = np.linalg.norm(gq)
    if not np.isfinite(norm) or norm == 0.0:
        raise UndefinedUpdate(f"||G q|| is {norm}")
    return softmax(lam * gq / norm)


def gram_flops(num_domains: int, dim: int) -> float:
    """FLOPs of the m × m Gram of m vectors of length D (one multiply and one add per term)."""
    return 2.0 * num_domains * num_domains * dim


@dataclass(kw_only=True, eq=False)
class RnB(MixingStrategy):
    """R&B Balance: p = softmax(λ·Gq/‖Gq‖) from the Gram of per-domain final-layer gradients."""

    signals = frozenset({Signal.DOMAIN_GRADIENTS})
    default_domains = "regroup"  # Regroup then Balance: the full R&B
    source = "Ge et al. 2025, arXiv 2505.00358, Alg. 1/3 (no public code: mixbench's is the first)"

    lam: float = 3.0

    def check_params(self) -> None:
        if isinstance(self.lam, bool) or not isinstance(self.lam, numbers.Real) \
                or not (np.isfinite(self.lam) and self.lam > 0):
            raise ValueError(f"rnb: lam must be a positive finite number, got {self.lam!r}")

    def start(self, ctx: RunContext) -> Mixture:
        self.check_params()
        self.q_ = np.array(ctx.eval_proportions, dtype=np.float64)
        per_round = ctx.steps_per_round  # batches per round; each domain needs examples in every round
        if ctx.num_domains > 1 and per_round * 4 < ctx.num_domains:
            log.warning("rnb: %d domains but only %d batches per round: rounds where a domain draws no "
                        "example keep the previous mixture; a larger --steps-per-round or fewer domains "
                        "lets Balance update", ctx.num_domains, per_round)
        self.mixture_ = Mixture.uniform(ctx.num_domains)
        self.last_gram_ = None
        return self.mixture_

    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        grads = feedback.domain_gradients
        try:
            gram = gram_matrix(grads.sums, grads.counts)
            probe.charge("gram", gram_flops(*grads.sums.shape))
            p = balance_mixture(gram, self.q_, self.lam)
        except UndefinedUpdate as why:
            log.warning("rnb: round %d: %s; keeping the previous mixture", feedback.round_index, why)
            return self.mixture_
        self.last_gram_ = gram
        self.mixture_ = Mixture(p, num_domains=len(self.q_))
        return self.mixture_

    def report_extras(self) -> dict:
        return {"last_gram": self.last_gram_.tolist()} if getattr(self, "last_gram_", None) is not None else {}

    def paper_overhead_flops(self, shape: RunShape) -> float:
        """App. D: ~m²·N per round. The meter counts less, by design: the Gram is taken over the
        final layer's gradient (D = V·h entries, not N), 2·m²·D FLOPs, once per update (T − 1
        updates: none after the last round); plus the tap's accumulator adds."""
        return float(shape.num_domains ** 2 * shape.num_params * shape.rounds)
