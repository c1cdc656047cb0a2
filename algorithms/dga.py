"""dga: Dynamic Gradient Alignment (Fan, Grangier, Ablin, "Dynamic Gradient Alignment for Online
Data Mixing", arXiv 2410.02498v1, 2024, Alg. 1 and its EMA variant). The authors published no code.

Caveat: the rule, the EMA's form and ema's value below are still the paper's as recalled, not read.
A second attempt to read the paper (arXiv HTML v1 and a markdown copy, through the stored-page
search) failed: the store keeps only each page's opening, i.e. the abstract and the first lines of
§1, and no copy of §2 onwards, Alg. 1 or the appendix was found in any other corpus. What the
readable sources do confirm:
  - abstract (the paper itself): DGA is online; it estimates, as the model trains, the mixture on
    which the model's gradients align best with its gradients on the specific task, at little
    overhead and without retraining;
  - third-party summaries made from the PDF (themoonlight.io, sciencestack.ai): generic domains
    D_1..D_k, a small specific set D_spe, α a probability vector over the k domains, a bilevel
    problem (inner: the generic loss L_gen(θ, α); outer: the specific loss), the weights updated
    on the simplex by a gradient rule, with an optional EMA for stability;
  - the ICLR 2025 reviews (OpenReview): DGA's own hyperparameters are the domain weights' learning
    rate, the reweighting period T_r and the EMA's smoothing factor; the EMA was added against
    overfitting and instability in the token-limited runs (30M tokens per domain, 125M-750M
    models); the values sit in the paper's appendix, which could not be read.
Not verified: Alg. 1's exact line (sign convention, any normalisation of a, where η sits), what the
EMA averages (weights, log-weights or alignments) and its coefficient, the paper's η, β and T_r
values, and which parameters' gradients enter a. Check them against the PDF before citing them.
A third search (this session: the code, pages, docs and issues corpora, the authors' and Apple's
repositories) found no copy of the body either. What it added: R&B's App. D.3 describes DGA's
round as one batch per domain and one of the specific set, full-model gradients and their inner
products (our a_i), and gives no η, EMA or T_r; one unattributed third-party reimplementation says
Alg. 1 prints exp(−η·a) while the paper's derivation upweights aligned domains, and follows the
derivation, as we do.

Rule (as recalled; that it is a gradient step on the simplex with an optional EMA agrees with
the summaries above). Every T_r training steps DGA draws one batch from each training domain i
and one from the specific (target) set, and takes their loss gradients with respect to all of the
model's parameters at the current θ. A domain's score is its alignment with the target,

    a_i = ⟨∇ℓ(θ; x_i), ∇ℓ(θ; y)⟩,     x_i ~ D_i,  y ~ D_target     (raw inner products)

The outer loss's gradient in α_i is −a_i (one model step ahead, up to the model's step size), so
one mirror-descent step on the simplex (exponentiated gradient, outer learning rate η) is

    α̂ = α ⊙ exp(η · a) / Σ_j α_j exp(η · a_j)

and the EMA stabilisation moves the weights only part of the way there:

    α ← ema · α + (1 − ema) · α̂          (ema = 0: plain DGA, α ← α̂)

There is one sequence of weights: the batches until the next update are drawn from α, and the
next step starts from it. A domain aligned with the target gains weight, one that pulls against
it loses weight; the size of each step grows with the gradients' scale (no normalisation of a,
as recalled).

Our adaptation. T_r is the trainer's round length K: the update runs at each round end, after
that round's K steps (the trainer calls it after every round but the last). The target is the
run's evaluation set: y is one batch of it (`probe.gradient(None)`), x_i one batch of training
domain i (`probe.gradient(i)`), each of the run's batch size; m + 1 extra forward + backward
passes per update. α starts uniform.

Defaults.
  eta = 1.0  our choice. The step acts on raw inner products of whole-model gradients, so its
             scale is the model's: on our small GPTs the gradient norms are ~1-2 and a_i ~0.5-5,
             with spreads of 0.1-0.4 between domains (synthetic task, measured). The paper's η was
             set for its 125M-750M models and run lengths; our runs make T − 1 = 5-15 updates.
  ema = 0.9  the paper's EMA (β = 0.1 on the new weights), as recalled: the reviews confirm that
             the EMA exists and has a smoothing factor, not its form or value (see the caveat).
             With η = 1 it keeps α close to uniform over a run as short as synthetic's; --ema 0
             is plain DGA.

Differences from the reference (docs/baselines.md keeps the table):
  - weights updated at round ends (every K steps) instead of every T_r steps: knob
    --steps-per-round (T_r = K);
  - the target set is the run's eval set, one batch per update: none (it is the benchmark's
    target);
  - no update after the last round (nothing is trained after it): none;
  - non-finite alignments (a broken batch) count as 0, so a non-finite target gradient leaves the
    weights as they were: none (the reference has no such case).

Overhead in the R&B paper's App. D.3: a total of 6(1 + δ)·D_t·N + 6·T·(D_e + m)·N, where δ·D_t
are the tokens of the domain batches (here one batch of B tokens per domain per round: δ·D_t =
T·m·B), D_e the target batch's tokens (here one batch: D_e = B) and m·N the m inner products of a
round. Over standard training that is 6·T·(m + 1)·B·N + T·m·N (`paper_overhead_flops`). The meter
charges the gradients as "probe_gradient" and the inner products, at 2·m·N per update (a multiply
and an add per parameter), as "alignment".
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass

import numpy as np

from mixbench.mixture import Mixture
from mixbench.probe import Probe
from mixbench.simplex import exponentiated_update
from mixbench.strategy import Capability, MixingStrategy, RoundFeedback, RunContext, RunShape

log = logging.getLogger(__name__)


def dga_weights(weights: np.ndarray, alignment: np.ndarray, eta: float, ema: float = 0.0) -> np.ndarray:
    """One DGA update: the mirror step α̂ = α ⊙ exp(η·a) (normalised), then the EMA
    ema·α + (1 − ema)·α̂. Non-finite alignments count as 0."""
    proposal = exponentiated_update(weights, alignment, eta)
    smoothed = ema * weights + (1.0 - ema) * proposal
    return smoothed / smoothed.sum()


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and bool(np.isfinite(value))


@dataclass(kw_only=True, eq=False)
class DGA(MixingStrategy):
    """DGA: α ← EMA of α ⊙ exp(η·⟨g_i, g_target⟩), from one batch gradient per domain and target."""

    capabilities = frozenset({Capability.PROBE_GRADIENTS})   # a batch gradient per domain and of the target

    source = ("Fan, Grangier, Ablin 2024, arXiv 2410.02498, Alg. 1 with EMA as recalled (body unread; "
              "no public code)")

    eta: float = 1.0
    ema: float = 0.9

    def check_params(self) -> None:
        if not (_is_number(self.eta) and self.eta > 0):
            raise ValueError(f"dga: eta must be positive and finite, got {self.eta!r}")
        if not (_is_number(self.ema) and 0 <= self.ema < 1):
            raise ValueError(f"dga: ema must be in [0, 1), got {self.ema!r}")

    def start(self, ctx: RunContext) -> Mixture:
        self.check_params()
        self.mixture_ = Mixture.uniform(ctx.num_domains)
        return self.mixture_

    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        m = len(self.mixture_)
        target = probe.gradient(None)
        alignment = np.array([float(probe.gradient(i) @ target) for i in range(m)])
        probe.charge("alignment", 2.0 * m * target.size)
        if not np.all(np.isfinite(alignment)):   # a broken batch; a broken target breaks them all
            log.warning("dga: round %d: %d non-finite alignment(s) count as 0",
                        feedback.round_index, int(np.sum(~np.isfinite(alignment))))
        self.mixture_ = Mixture(dga_weights(self.mixture_.weights, alignment, self.eta, self.ema))
        return self.mixture_

    def paper_overhead_flops(self, shape: RunShape) -> float:
        """App. D.3's overhead with one batch per domain and one target batch each round:
        6·T·(m + 1)·B·N for their gradients (forward and backward, 6 FLOPs per parameter per
        token) + T·m·N for the inner products. The meter counts the gradients over T − 1 updates
        (none after the last round)."""
        T, m, N = shape.rounds, shape.num_domains, shape.num_params
        return float(6 * T * (m + 1) * shape.batch_tokens * N + T * m * N)
