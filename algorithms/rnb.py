"""rnb: the Balance step of R&B (Ge et al., "R&B: Domain Regrouping and Data Mixture Balancing
for Efficient Foundation Model Training", arXiv 2505.00358, Alg. 1/3).

Each round of K steps the trainer sums, per domain i, the gradient of the loss with respect to
the final linear layer (g_i, over n_i examples). At the round end:

    G_ij    = <g_i, g_j> / (n_i n_j)                  Gram of per-domain mean gradients
    p_{t+1} = softmax(λ · G q / ||G q||_2)            q = evaluation proportions

p is overwritten every round (no multiplicative accumulation). λ → 0 gives uniform, λ → ∞ the
argmax vertex of Gq. It is the closed-form maximiser over the simplex of
η qᵀG p − λ⁻¹ ||ηGq|| Σ p_i log p_i (paper App. B.1).

Balance only ever reads G q, never G itself. With M the m × D matrix of mean gradients, G = M Mᵀ
and G q = M (Mᵀ q): two matrix-vector products, 4·m·D FLOPs, instead of the Gram's 2·m²·D (m/2 = 31×
less at m = 62). That is what the update computes (`balance_scores`); the same mixture up to
float rounding. The full Gram is built only for the report's heatmap: at the last update (or at
every update with `gram_every_round`), metered as reporting, not as the method's overhead.

Beyond the paper, an unbiased Gram (`gram_estimator="unbiased"`). The paper's G_ii = ‖ḡ_i‖², ḡ_i
the mean over the n_i examples the domain drew this round, estimates ‖E g_i‖² + tr Σ_i / n_i: each
domain's sampling noise inflates its own diagonal, most for the domains drawn least, which Gq
then favours. The unbiased estimator replaces the diagonal by ⟨ḡ_i^A, ḡ_i^B⟩, the means of two
halves of the domain's examples (independent samples: expectation ‖E g_i‖² exactly); the
off-diagonal ⟨ḡ_i, ḡ_j⟩ of independent domains is unbiased already. It asks the tap for the
halves (Signal.DOMAIN_GRADIENT_HALVES: twice the accumulators), costs 2·m·D more FLOPs per update,
and needs two examples of a domain in the round (one with fewer counts as undrawn). The theory
check `unbiased_gram` shows the bias and its absence.

A domain that drew no example in a round has no mean gradient. The paper does not say what to do
then; with R&B's own regrouping it is the common case (k ≈ 60 domains, a few hundred examples per
round), and keeping the whole previous mixture would leave Balance stalled for the run. Our
extension (`partial_update`, on by default): undrawn domains keep their probability mass, and the
rest of the mass is balanced over the drawn domains alone, by the same formula on their Gram and
their q. `partial_update=False` keeps the whole previous mixture, the literal reading. The run's
results count full, partial and skipped updates (`report_extras`).

When the update is undefined — no domain with eval weight drew an example, G q is zero, or
anything is non-finite — the previous mixture is kept and the reason is logged. It never
returns NaN.

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


def _checked(grad_sums, counts) -> tuple[np.ndarray, np.ndarray]:
    """Sums (m, D) and counts (m,) as float64; UndefinedUpdate if a domain drew no example (its
    mean gradient does not exist)."""
    grad_sums = np.asarray(grad_sums)
    counts = np.asarray(counts, dtype=np.float64)
    if grad_sums.ndim != 2 or counts.shape != (grad_sums.shape[0],):
        raise ValueError(f"expected sums (m, D) and counts (m,), got {grad_sums.shape} and {counts.shape}")
    if np.any(counts <= 0):
        missing = np.flatnonzero(counts <= 0).tolist()
        shown = ", ".join(map(str, missing[:8])) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise UndefinedUpdate(f"{len(missing)} domain(s) drew no examples this round ({shown})")
    return grad_sums.astype(np.float64, copy=False), counts


def gram_matrix(grad_sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """G_ij = <g_i, g_j> / (n_i n_j) for per-domain gradient sums g (m, D) and counts n (m,).

    Computed in float64. Raises UndefinedUpdate if a count is not positive (that domain's mean
    gradient does not exist).
    """
    grad_sums, counts = _checked(grad_sums, counts)
    means = grad_sums / counts[:, None]
    return means @ means.T


def balance_scores(grad_sums: np.ndarray, counts: np.ndarray, q: np.ndarray) -> np.ndarray:
    """G q without G: M (Mᵀ q), M the per-domain mean gradients (rows g_i / n_i), in float64.

    Mᵀ q = Σ_i (q_i / n_i) g_i is one pass over the sums, (M v)_i = <g_i, v> / n_i another: 4·m·D
    FLOPs (`balance_flops`) where the Gram takes 2·m²·D."""
    grad_sums, counts = _checked(grad_sums, counts)
    q = np.asarray(q, dtype=np.float64)
    if q.shape != counts.shape:
        raise ValueError(f"q has {q.shape[0] if q.ndim else 0} entries for {counts.shape[0]} domains")
    if not (np.all(np.isfinite(grad_sums)) and np.all(np.isfinite(q))):
        raise UndefinedUpdate("the domain gradients or q have non-finite entries")
    direction = (q / counts) @ grad_sums          # (D,)  Mᵀ q
    return (grad_sums @ direction) / counts       # (m,)  M (Mᵀ q)


def unbiased_balance_scores(half_sums: np.ndarray, half_counts: np.ndarray, q: np.ndarray) -> np.ndarray:
    """G q with G's diagonal free of sampling noise: the paper's G q from the full means, with
    each G_ii = ‖ḡ_i‖² replaced by ⟨ḡ_i^A, ḡ_i^B⟩, the inner product of the two halves' means.

    half_sums (2, m, D), half_counts (2, m); UndefinedUpdate if a half of a domain is empty."""
    half_sums = np.asarray(half_sums)
    half_counts = np.asarray(half_counts, dtype=np.float64)
    if half_sums.ndim != 3 or half_sums.shape[0] != 2 or half_counts.shape != half_sums.shape[:2]:
        raise ValueError(f"expected half sums (2, m, D) and counts (2, m), got {half_sums.shape} and "
                         f"{half_counts.shape}")
    if np.any(half_counts <= 0):
        short = np.flatnonzero((half_counts <= 0).any(0)).tolist()
        raise UndefinedUpdate(f"{len(short)} domain(s) drew fewer than two examples this round ({short[:8]})")
    sums, counts = half_sums[0] + half_sums[1], half_counts.sum(0)
    gq = balance_scores(sums, counts, q)
    a = half_sums[0].astype(np.float64, copy=False) / half_counts[0][:, None]
    b = half_sums[1].astype(np.float64, copy=False) / half_counts[1][:, None]
    means = sums.astype(np.float64, copy=False) / counts[:, None]
    diagonal_then = np.einsum("id,id->i", means, means)
    diagonal_now = np.einsum("id,id->i", a, b)
    return gq + np.asarray(q, dtype=np.float64) * (diagonal_now - diagonal_then)


def mixture_from_scores(gq: np.ndarray, lam: float) -> np.ndarray:
    """p = softmax(λ · Gq / ||Gq||_2).

    Raises UndefinedUpdate when Gq is non-finite or zero (the normalisation would divide by
    zero, the NaN the paper reports for mismatched eval domains).
    """
    if not (np.isfinite(lam) and lam > 0):
        raise ValueError(f"lam must be a positive finite number, got {lam!r}")
    gq = np.asarray(gq, dtype=np.float64)
    if not np.all(np.isfinite(gq)):
        raise UndefinedUpdate("G q has non-finite entries")
    norm = np.linalg.norm(gq)
    if not np.isfinite(norm) or norm == 0.0:
        raise UndefinedUpdate(f"||G q|| is {norm}")
    return softmax(lam * gq / norm)


def balance_mixture(gram: np.ndarray, q: np.ndarray, lam: float) -> np.ndarray:
    """p = softmax(λ · G q / ||G q||_2) from a Gram matrix: the paper's formula as written, for
    the theory checks and for callers that hold a Gram (the run computes G q without it)."""
    if not (np.isfinite(lam) and lam > 0):
        raise ValueError(f"lam must be a positive finite number, got {lam!r}")
    gram = np.asarray(gram, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if not (np.all(np.isfinite(gram)) and np.all(np.isfinite(q))):
        raise UndefinedUpdate("the Gram matrix or q has non-finite entries")
    return mixture_from_scores(gram @ q, lam)


def gram_flops(num_domains: int, dim: int) -> float:
    """FLOPs of the m × m Gram of m vectors of length D (one multiply and one add per term)."""
    return 2.0 * num_domains * num_domains * dim


def balance_flops(num_domains: int, dim: int) -> float:
    """FLOPs of G q as M (Mᵀ q): two products of an m × D matrix with a vector."""
    return 4.0 * num_domains * dim


GRAM_ESTIMATORS = ("paper", "unbiased")


@dataclass(kw_only=True, eq=False)
class RnB(MixingStrategy):
    """R&B Balance: p = softmax(λ·Gq/‖Gq‖) from the Gram of per-domain final-layer gradients."""

    default_domains = "regroup"  # Regroup then Balance: the full R&B
    # The unbiased Gram reads each domain's gradients over two halves; without partial updates a
    # round with an undrawn domain keeps the mixture; the Gram built every round is metered apart.
    variants = {"unbiased": {"gram_estimator": "unbiased"}, "whole-updates": {"partial_update": False},
                "gram-every-round": {"gram_every_round": True}}
    source = "Ge et al. 2025, arXiv 2505.00358, Alg. 1/3 (no public code: mixbench's is the first)"

    lam: float = 3.0
    # Balance the drawn domains when some drew no example this round (ours; see the docstring).
    partial_update: bool = True
    # "paper": G_ii = ‖ḡ_i‖² as the paper; "unbiased": the diagonal from two halves (ours).
    gram_estimator: str = "paper"
    # The Gram is only read by the report's heatmap; by default it is built at the last update.
    gram_every_round: bool = False

    @property
    def signals(self) -> frozenset[Signal]:
        """The domain gradients; with the unbiased estimator, over two halves of each domain."""
        halves = {Signal.DOMAIN_GRADIENT_HALVES} if self.gram_estimator == "unbiased" else set()
        return frozenset({Signal.DOMAIN_GRADIENTS, *halves})

    def check_params(self) -> None:
        if isinstance(self.lam, bool) or not isinstance(self.lam, numbers.Real) \
                or not (np.isfinite(self.lam) and self.lam > 0):
            raise ValueError(f"rnb: lam must be a positive finite number, got {self.lam!r}")
        if self.gram_estimator not in GRAM_ESTIMATORS:
            raise ValueError(f"rnb: gram_estimator must be one of {', '.join(GRAM_ESTIMATORS)}, "
                             f"got {self.gram_estimator!r}")
        for name in ("partial_update", "gram_every_round"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"rnb: {name} must be true or false, got {getattr(self, name)!r}")

    def start(self, ctx: RunContext) -> Mixture:
        self.check_params()
        self.q_ = np.array(ctx.eval_proportions, dtype=np.float64)
        per_round = ctx.steps_per_round  # batches per round; each domain needs examples in every round
        if not self.partial_update and ctx.num_domains > 1 and per_round * 4 < ctx.num_domains:
            log.warning("rnb: %d domains but only %d batches per round: rounds where a domain draws no "
                        "example keep the previous mixture; --partial-update true, a larger "
                        "--steps-per-round or fewer domains lets Balance update", ctx.num_domains, per_round)
        self.mixture_ = Mixture.uniform(ctx.num_domains)
        self.last_gram_ = None
        self.total_steps_, self.steps_per_round_ = ctx.total_steps, ctx.steps_per_round
        self.updates_ = {"full": 0, "partial": 0, "kept": 0}
        return self.mixture_

    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        grads = feedback.domain_gradients
        usable = self._usable(grads)
        partial = not usable.all()
        try:
            if partial and not self.partial_update:
                short = np.flatnonzero(~usable).tolist()
                drew = "no examples" if self.gram_estimator == "paper" else "fewer than two examples"
                more = f" and {len(short) - 8} more" if len(short) > 8 else ""
                raise UndefinedUpdate(f"{len(short)} domain(s) drew {drew} this round "
                                      f"({', '.join(map(str, short[:8]))}{more})")
            p = self._balance(grads, usable, probe)
        except UndefinedUpdate as why:
            log.warning("rnb: round %d: %s; keeping the previous mixture", feedback.round_index, why)
            self.updates_["kept"] += 1
            return self.mixture_
        self.updates_["partial" if partial else "full"] += 1
        last_update = feedback.step + self.steps_per_round_ >= self.total_steps_
        if last_update or self.gram_every_round:
            self.last_gram_ = self._gram_for_report(grads, usable, probe)
        self.mixture_ = Mixture(p, num_domains=len(self.q_))
        return self.mixture_

    def _usable(self, grads) -> np.ndarray:
        """The domains with a mean gradient this round: drawn at all, or (unbiased estimator)
        in both halves."""
        if self.gram_estimator == "unbiased":
            return np.all(np.asarray(grads.half_counts) > 0, axis=0)
        return np.asarray(grads.counts) > 0

    def _balance(self, grads, usable: np.ndarray, probe: Probe) -> np.ndarray:
        """Balance over the usable domains; the others (partial update) keep their mass."""
        rows = np.flatnonzero(usable)
        q = self.q_[rows]
        if rows.size == 0 or q.sum() <= 0:
            raise UndefinedUpdate("no domain with eval weight drew an example this round")
        everyone = rows.size == usable.size   # no copy of the sums in the usual case
        if self.gram_estimator == "unbiased":
            half_sums = grads.half_sums if everyone else np.asarray(grads.half_sums)[:, rows]
            half_counts = np.asarray(grads.half_counts)[:, rows]
            gq = unbiased_balance_scores(half_sums, half_counts, q / q.sum())
            flops = balance_flops(rows.size, half_sums.shape[2]) + 4.0 * rows.size * half_sums.shape[2]
        else:
            sums = grads.sums if everyone else np.asarray(grads.sums)[rows]
            gq = balance_scores(sums, np.asarray(grads.counts)[rows], q / q.sum())
            flops = balance_flops(*sums.shape)
        probe.charge("gq", flops)
        p = self.mixture_.weights.copy()
        p[rows] = p[rows].sum() * mixture_from_scores(gq, self.lam)
        return p

    def _gram_for_report(self, grads, usable: np.ndarray, probe: Probe) -> np.ndarray:
        """The m × m Gram Balance used, for the report's heatmap; NaN rows and columns for the
        domains it left out."""
        rows = np.flatnonzero(usable)
        gram = np.full((usable.size, usable.size), np.nan)
        with probe.for_report("gram", gram_flops(rows.size, grads.sums.shape[1])):
            block = gram_matrix(np.asarray(grads.sums)[rows], np.asarray(grads.counts)[rows])
            if self.gram_estimator == "unbiased":
                halves = [np.asarray(grads.half_sums)[h, rows] / np.asarray(grads.half_counts)[h, rows][:, None]
                          for h in (0, 1)]
                np.fill_diagonal(block, np.einsum("id,id->i", *halves))
            gram[np.ix_(rows, rows)] = block
        return gram

    def report_extras(self) -> dict:
        extras = {"updates": dict(self.updates_)} if hasattr(self, "updates_") else {}
        if getattr(self, "last_gram_", None) is not None:
            extras["last_gram"] = self.last_gram_.tolist()
        return extras

    def paper_overhead_flops(self, shape: RunShape) -> float:
        """App. D: ~m²·N per round (a Gram over all N parameters). The meter counts far less, by
        design: G q over the final layer's gradient (D = V·h entries, not N) as M (Mᵀ q), 4·m·D
        FLOPs, once per update (T − 1 updates: none after the last round); plus the tap's
        accumulator adds."""
        return float(shape.num_domains ** 2 * shape.num_params * shape.rounds)
