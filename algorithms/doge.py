"""doge: DoGE's proxy-run domain weights (Fan, Pagliardini, Jaggi, "DoGE: Domain Reweighting with
Generalization Estimation", arXiv 2310.15393, ICML 2024).

DoGE is offline. Before training (`prepare`), a proxy — a scratch copy of the run's model inside
`probe.branch()`, metered as overhead and undone after — trains T = `proxy_steps` steps with a
bilevel rule; the average of the domain weights α it learned is p_0, kept for the whole run.
From α_0 uniform, at each proxy step t = 0 … T−1:

    g_i = clip(∇ of domain i's slice of one batch)  i = 1 … m   ┐ probe.gradients([0, …, m−1, None]):
    g_* = clip(∇ of the eval set's slice of it)     the target  ┘ one batch, split m + 1 ways
    s_i = clip(η_t·<g_i, g_*> / (mean_j ‖g_j‖ + 1e-6),  η_t·dw_min,  η_t·dw_max)
    α   ← softmax(log α + s / μ);   α ← (1 − ε)·α + ε/m
    the proxy steps on Σ_i α_i·L_i(batch)           L_i: domain i's mean token loss in the batch
    p_0 = (1/T)·Σ_{t=1..T} α_t

clip(g) = g·min(1, c / (‖g‖ + 1e-6)) is torch's clip_grad_norm_ at c = `domain_grad_clip`, on
each gradient alone. η_t scales the scores by the reference proxy's learning rate at step t:
linear warm-up from 1e-7 over ⌈score_warmup·T⌉ steps, then cosine from `score_lr` down to
`score_lr_end`. The proxy's batches come from the uniform mixture; α only weighs their losses.

Source: Olivia-fsm/DoGE @ 1fb7f7bb60dd4f7044c5c11e1ec788284eacf87c, src/trainer.py:746-770
(update_domain_weights_distributed: the path config/doge.json selects, trainer.py:1036-1040);
per-domain clipping :733-734; η_t is get_last_lr() :750 of LinearWarmupCosineLR :291-295 with
lr_start 1e-7 :275; the average :767-770; α_0 uniform :401; proxy batches from the fixed uniform
weights src/dataloader.py:261,316 (never updated: trainer.py:368 keeps the first tensor). The
Aioli authors' re-run (HazyResearch/aioli @ 910d5249ec55c0e1ea1a25b9a7588640306f31cf,
trainer/doge_trainer.py:116-201) is the same rule with a validation batch as the target.

Defaults, from config/doge.json @ 1fb7f7bb (run by script/doge.sh:5): mu = 0.01 (:29; the field's
own default 0.05 is overridden), dw_max = 5.0 (:30), dw_min = 0.0 (:31), reweight_eps = 0.0 (:28),
domain_grad_clip = 5.0 (max_grad_norm :32), score_lr = 5e-4 (learning_rate :21), score_lr_end =
1e-4 (lr_end :27), score_warmup = 0.05 (warmup_ratio :34; warmup_steps 500 of max_steps 10000,
:35-36), schedule linear_warmup_cosine (:26). Target: the eval set, as tgt_domains "mix" (:4) is
a held-out slice of every training domain (src/data/utils.py:75-103) and the re-run's target is
its validation set (doge_trainer.py:148). proxy_steps = 0 means as long as the run (total_steps),
as the re-run trains its proxy for the final run's length (scripts/full/doge/run_proxy.sh:8,17
and run_final.sh:9: 40000 both).

Deviations (docs/baselines.md has the table):
  * g_i and g_* come from the equal slices of one batch (probe.gradients), and the proxy then
    steps on a second, uniform batch; the reference takes the gradients from the domain slices of
    the batch it steps on, and steps with their α-weighted sum (trainer.py:676-717, 769), because
    a weighted step shows the strategy losses, never gradients. So a proxy step costs two batches
    instead of one, each domain's slice has exactly ⌊B/(m+1)⌋ or ⌈B/(m+1)⌉ rows (the reference's
    uniform sampling varies them), and every domain has a fresh gradient each step (the reference
    reuses a stale row for a domain missing from the batch, :737). No knob.
  * The target batches come from the run's eval subset (the examples it is scored on), not from a
    held-out slice of the training data. No knob (the probe's target is the eval set).
  * The proxy step's gradient Σ α_i ∇L_i is not clipped per domain (the reference sums clipped
    ones, :769); the run's own clip (the run's --grad-clip) applies to the sum, as the HF
    Trainer's max_grad_norm does. No knob.
  * The proxy is the run's model, trained with the run's optimiser, schedule and batch size (the
    reference: an 82M GPT-2, AdamW at 5e-4, batch 32). η_t keeps the reference's schedule
    (--score-lr, --score-lr-end, --score-warmup) since a strategy cannot see the run's. No knob
    for the proxy itself.
  * T is the run's length, not the reference's 10000 steps: --proxy-steps sets it.
  * A non-finite score counts as 0 (α is not moved by it), so the strategy never returns NaN.
Overhead: no formula in R&B's App. D (it covers Skill-It, Aioli, DGA and R&B); derived in
`paper_overhead_flops`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from mixbench.mixture import Mixture
from mixbench.probe import BatchLosses, Probe
from mixbench.simplex import exponentiated_update
from mixbench.strategy import Capability, MixingStrategy, RoundFeedback, RunContext, RunShape, check_scratch_steps

LR_START = 1e-7   # where the reference's warm-up starts (src/trainer.py:275)


def reference_lr(step: int, steps: int, peak: float, end: float, warmup: float) -> float:
    """η_t: linear warm-up from 1e-7 over ⌈warmup·steps⌉ steps, then cosine from peak to end
    (LinearWarmupCosineLR, src/trainer.py:291-295; warm-up steps as HF's get_warmup_steps)."""
    warmup_steps = math.ceil(warmup * steps)
    if step < warmup_steps:
        return LR_START + (peak - LR_START) * step / warmup_steps
    return end + (peak - end) * (1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps))) / 2


def clip_norm(grad: np.ndarray, max_norm: float) -> np.ndarray:
    """g·min(1, c / (‖g‖ + 1e-6)), as torch.nn.utils.clip_grad_norm_ scales a gradient."""
    grad = np.asarray(grad, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):   # a non-finite gradient gives a 0 score later
        return grad * min(1.0, max_norm / (np.linalg.norm(grad) + 1e-6))


def doge_scores(domain_grads: np.ndarray, target_grad: np.ndarray, lr_t: float,
                dw_min: float, dw_max: float) -> np.ndarray:
    """s_i = clip(η_t·<g_i, g_*> / (mean_j ‖g_j‖ + 1e-6), η_t·dw_min, η_t·dw_max) for clipped
    gradients g (m, D) and g_* (D,); non-finite scores are 0."""
    with np.errstate(invalid="ignore", over="ignore"):
        scores = lr_t * (domain_grads @ target_grad) / (np.linalg.norm(domain_grads, axis=1).mean() + 1e-6)
        scores = np.clip(scores, lr_t * dw_min, lr_t * dw_max)
    return np.where(np.isfinite(scores), scores, 0.0)


def domain_mean_weights(batch: BatchLosses, alpha: np.ndarray) -> np.ndarray:
    """Per-example weights α_d / (tokens of domain d in the batch): the weighted loss is then
    Σ_d α_d · (mean token loss of domain d), the reference's step; absent domains add nothing."""
    tokens = np.bincount(batch.domains, weights=batch.row_weight, minlength=len(alpha))
    per_domain = np.divide(alpha, tokens, out=np.zeros(len(alpha)), where=tokens > 0)
    return per_domain[batch.domains]


@dataclass(kw_only=True, eq=False)
class DoGE(MixingStrategy):
    """DoGE: a proxy run before training learns α ← softmax(log α + η_t·<g_i, g_eval>/μ); p = mean α."""

    # The proxy is a scratch copy of the run; its steps read per-domain gradient slices of a batch.
    capabilities = frozenset({Capability.SCRATCH_RUNS, Capability.PROBE_GRADIENTS})

    source = ("Fan, Pagliardini, Jaggi 2024, arXiv 2310.15393, proxy run with the bilevel rule; code "
              "Olivia-fsm/DoGE@1fb7f7b src/trainer.py:746-770, defaults config/doge.json")

    mu: float = 0.01
    dw_min: float = 0.0
    dw_max: float = 5.0
    reweight_eps: float = 0.0
    domain_grad_clip: float = 5.0
    score_lr: float = 5e-4
    score_lr_end: float = 1e-4
    score_warmup: float = 0.05
    proxy_steps: int = 0

    def check_params(self) -> None:
        for name in ("mu", "domain_grad_clip", "score_lr"):
            value = getattr(self, name)
            if not (_is_real(value) and np.isfinite(value) and value > 0):
                raise ValueError(f"doge: {name.replace('_', '-')} must be positive, got {value!r}")
        if not (_is_real(self.score_lr_end) and 0 <= self.score_lr_end <= self.score_lr):
            raise ValueError(f"doge: score-lr-end must be in [0, score-lr], got {self.score_lr_end!r}")
        if not (_is_real(self.dw_min) and _is_real(self.dw_max) and np.isfinite(self.dw_min)
                and np.isfinite(self.dw_max) and self.dw_min <= self.dw_max):
            raise ValueError(f"doge: dw-min and dw-max must be finite with dw-min <= dw-max, "
                             f"got {self.dw_min!r} and {self.dw_max!r}")
        if not (_is_real(self.reweight_eps) and 0 <= self.reweight_eps <= 1):
            raise ValueError(f"doge: reweight-eps must be in [0, 1], got {self.reweight_eps!r}")
        if not (_is_real(self.score_warmup) and 0 <= self.score_warmup < 1):
            raise ValueError(f"doge: score-warmup must be in [0, 1), got {self.score_warmup!r}")
        if isinstance(self.proxy_steps, bool) or int(self.proxy_steps) != self.proxy_steps or self.proxy_steps < 0:
            raise ValueError(f"doge: proxy-steps must be a non-negative integer (0: the run's length), "
                             f"got {self.proxy_steps!r}")

    def start(self, ctx: RunContext) -> Mixture:
        self.check_params()
        self.proxy_steps_ = int(self.proxy_steps) or ctx.total_steps
        check_scratch_steps("doge: proxy-steps", self.proxy_steps_, ctx.total_steps)
        self.alpha_ = np.full(ctx.num_domains, 1.0 / ctx.num_domains)   # the proxy's last α
        self.mixture_ = Mixture.uniform(ctx.num_domains)
        return self.mixture_

    def prepare(self, probe: Probe) -> Mixture:
        m = len(self.mixture_)
        alpha, total = self.alpha_.copy(), np.zeros(m)
        uniform = Mixture.uniform(m)
        with probe.branch():   # the proxy: a scratch copy of the run, undone after
            for t in range(self.proxy_steps_):
                # The domain slices of one batch, the target's last (as the reference's "mix" domain).
                slices = probe.gradients([*range(m), None])
                grads = np.stack([clip_norm(g, self.domain_grad_clip) for g in slices[:m]])
                target = clip_norm(slices[m], self.domain_grad_clip)
                probe.charge("alignment", alignment_flops(m, target.size))
                lr_t = reference_lr(t, self.proxy_steps_, self.score_lr, self.score_lr_end, self.score_warmup)
                scores = doge_scores(grads, target, lr_t, self.dw_min, self.dw_max)
                alpha = exponentiated_update(alpha, scores, 1.0 / self.mu)
                alpha = (1 - self.reweight_eps) * alpha + self.reweight_eps / m
                total += alpha
                probe.train(uniform, 1, weigh=partial(domain_mean_weights, alpha=alpha))
        self.alpha_ = alpha
        self.mixture_ = Mixture(total / total.sum())
        return self.mixture_

    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        return self.mixture_   # DoGE's weights are fixed for the run (run_final.sh:11-12)

    def report_extras(self) -> dict:
        return {"proxy_last_weights": self.alpha_.tolist()} if getattr(self, "alpha_", None) is not None else {}

    def paper_overhead_flops(self, shape: RunShape) -> float:
        """Not in R&B's App. D; derived: each of the T proxy steps costs one batch split among the
        m domains and the target (forward + backward, 6·N FLOPs per token) and the weighted step
        on another (also 6·N per token): 12·T·B·N for batches of B tokens, i.e. 12·D_t·N when the
        proxy is as long as the run (T·B = D_t). The meter counts this plus `alignment_flops` per
        step (the norms and inner products: O(m·N), under 1/B of the rest); with fewer rows in a
        batch than m + 1 each slice still takes one, so the gradients cost m + 1 rows instead."""
        proxy_tokens = self.proxy_steps * shape.batch_tokens if self.proxy_steps else shape.train_tokens
        return float(12 * proxy_tokens * shape.num_params)


def alignment_flops(num_domains: int, dim: int) -> float:
    """The m + 1 squared norms (for the clipping) and m inner products over D entries, a multiply
    and an add per entry."""
    return 2.0 * (2 * num_domains + 1) * dim


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
