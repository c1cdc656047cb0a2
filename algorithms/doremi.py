"""doremi: Domain Reweighting with Minimax Optimization (Xie et al., "DoReMi: Optimizing Data
Mixtures Speeds Up Language Model Pretraining", arXiv 2305.10429, Alg. 1), as its authors' code
does it: github.com/sangmichaelxie/doremi at HEAD 7cde52d1848737aa967ecbdb9e643cf334de160d. Line
numbers below are as of the commit each file last changed in, identical at HEAD:
  doremi/trainer.py, scripts/runs/run_pile_{doremi,baseline}120M.sh   d8ed1fb5614dd11896e2934794e01d42942f2d48
  doremi/{train,training_args,dataloader}.py, run_pile_main120M.sh   a6bacfdcb1cce972c9b2a04257483e5b59c7e9a2
The Aioli authors' re-run (HazyResearch/aioli 910d5249ec55c0e1ea1a25b9a7588640306f31cf,
trainer/doremi_trainer.py, scripts/*/doremi/run_{reference,proxy,final}.sh) is cited where it differs.

DoReMi is offline: all its work happens before training, in prepare(), on scratch copies of the
run (probe branches), and the main model then trains on one fixed mixture.

1. Reference model: the run's initial model trained `reference_steps` steps on the baseline
   mixture (`reference_mixture`), then frozen.
2. Proxy model: the run's initial model trained `proxy_steps` steps on batches sampled uniformly
   (s = 1/m), with Group DRO against the reference. On every step t, before the gradient, from the
   batch's token losses ℓ_t (proxy) and ℓ_ref,t (reference), examples x of |x| tokens, domains B_i:

       λ_i  = Σ_{x∈B_i} Σ_{t∈x} max(ℓ_t − ℓ_ref,t, 0) / Σ_{x∈B_i} |x|     (λ_i kept from the last
                                                                  step where B_i is empty)
       α_t  = (1 − c) · softmax(log α_{t−1} + η·λ) + c/m
       loss = Σ_x u_{d(x)} ℓ_x / Σ_x u_{d(x)} |x|,   u = (α_t / s) / Σ (α_t / s)

   with α_0 = 1/m and λ's start value `initial_score`.
3. p = ᾱ = mean(α_0, α_1, …, α_T), the proxy's average weights: the mixture of the whole run
   (update() keeps it, as DoReMi's final run trains on it).

Where each piece is in the reference code:
  excess, clipped, per-domain token mean; an absent domain keeps its score   trainer.py:247-256, 303
  exponentiated step, smoothing                                              trainer.py:257-259
  the step's loss weights from α_t, updated on this very batch first        trainer.py:328-334, 344-363
  running average, its counter starting at 1 with α_0 in it                 trainer.py:157-160, train.py:270-274
  λ starts at ln|V|                                                          train.py:273
  the average is the final run's mixture                    train.py:348-362, run_pile_main120M.sh:47
  proxy batches drawn by the proxy's domain config (uniform), never by α
                                                            train.py:281-295, dataloader.py:265-270, 329-333

Defaults, each from the authors' published 120M run scripts:
  eta = 1.0                 run_pile_doremi120M.sh:70 (--reweight_eta 1.0; also training_args.py:175-178)
  smoothing = 1e-3          run_pile_doremi120M.sh:71 (--reweight_eps 1e-3; training_args.py:179-182's
                            default 1e-4 is not what the published runs use)
  reference_steps = 0, proxy_steps = 0: "as long as the run": the reference, proxy and main runs
                            all train max_steps 200000 (run_pile_baseline120M.sh:51,
                            run_pile_doremi120M.sh:49, run_pile_main120M.sh:53); the Aioli re-run
                            keeps that equality (scripts/full/doremi/run_reference.sh:11,
                            run_proxy.sh:14, run_final.sh:9)
  reference_mixture = "static": the reference trains on the data's own domain weights
                            (run_pile_baseline120M.sh:22,45: configs/pile_baseline_50kvocab_nopack.json,
                            the Pile's token-count weights); "stratified" is the Aioli re-run's
                            choice (scripts/full/doremi/run_reference.sh:1,14)
  proxy sampling = uniform  run_pile_doremi120M.sh:43 (configs/pile_uniform.json); not a knob
  initial_score = ln 257    ln|V| (train.py:273) for the 257-symbol byte vocabulary of mixbench's
                            from-scratch models (mixbench/models/tokenizers.py)

Deviations from the reference code (reason; the knob that restores it):
  - On image-text tasks the clip max(·, 0) acts per example (its contrastive loss has no tokens);
    on text it is per token, as the reference's. Knob: none.
  - "static" samples by example counts; the Pile config weighs domains by tokens. The run context
    gives example counts only. Knob: none.
  - Reference and proxy train with the run's optimiser, learning-rate schedule (sized for the
    run's steps) and batch size, not DoReMi's AdamW(0.9, 0.99)/exponential-decay recipe; they
    start from the run's initial weights (the reference code: seed 1111 for both, 1112 for the
    main run); both draw batches from the run's sampler as it stands before training (the same
    stream: with reference_mixture "stratified" the proxy's batches are the reference's), where the
    reference code has the proxy read each domain's shards in reverse order (train.py:294,
    dataloader.py:160-163). The benchmark trains every strategy with one recipe and one sampler.
    Knob: the run options (--lr, --batch-size, --seed, …) apply to all three; with reference_steps
    or proxy_steps other than the run's length the schedule no longer spans their run.
  - A domain whose rows in a batch have no finite excess or no tokens keeps its λ, where the
    reference's mean over no tokens would be NaN. Knob: none (a guard: finite losses on rows with
    tokens never reach it).
  - initial_score is ln 257, not ln|V| of the model actually trained (an HF model's vocabulary,
    the image-text contrastive loss): a strategy cannot see the vocabulary. Knob: initial_score.
  - float64 throughout; the reference keeps α and its average in float32 buffers. Knob: none.

The paper's Alg. 1 returns the mean of α_1..α_T; the code (followed here) also counts α_0.

Overhead (the R&B paper's App. D gives no DoReMi formula; ours, counted as the meter counts):
reference training 6·N·D_ref + proxy training 6·N·D_proxy + the frozen reference's forward on
every proxy batch 2·N·D_proxy, with D_ref = reference_steps × batch tokens (D_t by default) and
D_proxy likewise: 14·N·D_t with the defaults, 2.33× the run's own training.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass

import numpy as np

from mixbench.mixture import Mixture
from mixbench.probe import BatchLosses, Probe
from mixbench.simplex import exponentiated_update
from mixbench.strategy import Capability, MixingStrategy, RoundFeedback, RunContext, RunShape, check_scratch_steps

log = logging.getLogger(__name__)

REFERENCE_MIXTURES = ("static", "stratified")


def clipped_excess(batch: BatchLosses) -> np.ndarray:
    """Per example, its clipped excess loss over the reference: Σ_tokens max(ℓ_t − ℓ_ref,t, 0) when
    the workload shows token losses (text; doremi/trainer.py:303, 250), else max(ℓ_x − ℓ_ref,x, 0)
    on the example's summed loss (image-text). NaN where no finite excess exists."""
    with np.errstate(invalid="ignore"):   # inf − inf: a row without a usable loss
        if batch.token_loss is not None and batch.reference_token_loss is not None:
            return np.maximum(batch.token_loss - batch.reference_token_loss, 0.0).sum(axis=1)
        return np.maximum(batch.row_loss - batch.reference_loss, 0.0)


def excess_scores(batch: BatchLosses, previous: np.ndarray) -> np.ndarray:
    """λ_i = Σ_{x∈B_i} clipped excess of x / Σ_{x∈B_i} |x|; previous[i] where domain i has no row
    with a finite excess and tokens in this batch (doremi/trainer.py:247-256)."""
    if batch.reference_loss is None:
        return previous
    excess = clipped_excess(batch)
    usable = np.isfinite(excess) & np.isfinite(batch.row_weight) & (batch.row_weight > 0)
    m = len(previous)
    clipped = np.bincount(batch.domains, weights=np.where(usable, excess, 0.0), minlength=m)
    tokens = np.bincount(batch.domains, weights=np.where(usable, batch.row_weight, 0.0), minlength=m)
    return np.where(tokens > 0, clipped / np.where(tokens > 0, tokens, 1.0), previous)


def doremi_weights(weights: np.ndarray, scores: np.ndarray, eta: float, smoothing: float) -> np.ndarray:
    """α ← (1 − c)·softmax(log α + η·λ) + c/m (doremi/trainer.py:257-259)."""
    return (1 - smoothing) * exponentiated_update(weights, scores, eta) + smoothing / len(weights)


def loss_weights(weights: np.ndarray, sampling: np.ndarray, batch: BatchLosses) -> np.ndarray:
    """Per-example weights w_x = u_{d(x)} / Σ_y u_{d(y)}·|y| with u ∝ α / s, so Σ_x w_x ℓ_x is the
    reference's token-weighted loss (doremi/trainer.py:346-363; its normaliser floored at 1e-10).
    Rows without tokens weigh 0, as their masked tokens do there."""
    per_domain = weights / sampling
    per_domain = per_domain / per_domain.sum()
    tokens = np.where(np.isfinite(batch.row_weight) & (batch.row_weight > 0), batch.row_weight, 0.0)
    per_example = per_domain[batch.domains]
    normaliser = max(float(per_example @ tokens), 1e-10)
    return np.where(tokens > 0, per_example / normaliser, 0.0)


@dataclass(kw_only=True, eq=False)
class DoReMi(MixingStrategy):
    """DoReMi: a proxy trained by Group DRO on excess loss over a reference model; its average weights are p."""

    capabilities = frozenset({Capability.SCRATCH_RUNS})   # the reference and the proxy: scratch copies of the run

    source = ("Xie et al. 2023, arXiv 2305.10429, Alg. 1; code github.com/sangmichaelxie/doremi @7cde52d "
              "(doremi/trainer.py, scripts/runs/run_pile_doremi120M.sh)")

    eta: float = 1.0
    smoothing: float = 1e-3
    reference_steps: int = 0       # 0: as long as the run
    proxy_steps: int = 0           # 0: as long as the run
    reference_mixture: str = "static"
    initial_score: float = math.log(257)

    def check_params(self) -> None:
        if not _real(self.eta) or not (math.isfinite(self.eta) and self.eta > 0):
            raise ValueError(f"doremi: eta must be positive, got {self.eta!r}")
        if not _real(self.smoothing) or not 0 <= self.smoothing <= 1:
            raise ValueError(f"doremi: smoothing must be in [0, 1], got {self.smoothing!r}")
        for name in ("reference_steps", "proxy_steps"):
            value = getattr(self, name)
            if not _real(value) or int(value) != value or value < 0:
                raise ValueError(f"doremi: {name.replace('_', '-')} must be a non-negative integer "
                                 f"(0: as long as the run), got {value!r}")
        if self.reference_mixture not in REFERENCE_MIXTURES:
            raise ValueError(f"doremi: reference-mixture must be one of {', '.join(REFERENCE_MIXTURES)}, "
                             f"got {self.reference_mixture!r}")
        if not _real(self.initial_score) or not math.isfinite(self.initial_score):
            raise ValueError(f"doremi: initial-score must be a finite number, got {self.initial_score!r}")

    def start(self, ctx: RunContext) -> Mixture:
        self.check_params()
        m = ctx.num_domains
        self.reference_steps_ = int(self.reference_steps) or ctx.total_steps
        self.proxy_steps_ = int(self.proxy_steps) or ctx.total_steps
        check_scratch_steps("doremi: reference-steps", self.reference_steps_, ctx.total_steps)
        check_scratch_steps("doremi: proxy-steps", self.proxy_steps_, ctx.total_steps)
        self.baseline_ = (Mixture.proportional(ctx.train_sizes) if self.reference_mixture == "static"
                          else Mixture.uniform(m))
        self.sampling_ = Mixture.uniform(m)           # the proxy's batches (pile_uniform.json)
        self.weights_ = np.full(m, 1.0 / m)          # α_t
        self.scores_ = np.full(m, float(self.initial_score))   # λ, kept for domains a batch lacks
        self.average_ = self.weights_.copy()         # mean of α_0..α_t
        self.updates_ = 1                            # α's in the average (the reference's counter)
        self.mixture_ = Mixture.uniform(m)           # until prepare() has trained the proxy
        return self.mixture_

    def prepare(self, probe: Probe) -> Mixture:
        if len(self.weights_) == 1:
            return self.mixture_   # one domain: nothing to weigh, nothing to train
        with probe.branch():   # step 1, on a scratch copy: the reference model
            probe.train(self.baseline_, self.reference_steps_)
            reference = probe.freeze()
        with probe.branch():   # step 2, on a scratch copy: the Group DRO proxy
            probe.train(self.sampling_, self.proxy_steps_, weigh=self._group_dro_step, reference=reference)
        self.mixture_ = Mixture(self.average_ / self.average_.sum())
        log.info("doremi: %d proxy updates; p = %s", self.updates_ - 1, np.round(self.mixture_.weights, 4).tolist())
        return self.mixture_

    def _group_dro_step(self, batch: BatchLosses) -> np.ndarray:
        """One proxy step: α from this batch's excess losses, then the step's loss weights from it."""
        self.scores_ = excess_scores(batch, self.scores_)
        self.weights_ = doremi_weights(self.weights_, self.scores_, self.eta, self.smoothing)
        self.updates_ += 1
        self.average_ = (self.average_ * (self.updates_ - 1) + self.weights_) / self.updates_
        return loss_weights(self.weights_, self.sampling_.weights, batch)

    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        return self.mixture_   # offline: the proxy's average weights for the whole run

    def report_extras(self) -> dict:
        if getattr(self, "average_", None) is None:
            return {}
        return {"proxy_average_weights": self.average_.tolist(), "proxy_last_weights": self.weights_.tolist(),
                "proxy_updates": self.updates_ - 1}

    def paper_overhead_flops(self, shape: RunShape) -> float:
        """Not in the R&B paper's App. D; derived as the meter counts it: 6·N·D_ref (reference
        training) + 6·N·D_proxy (proxy training) + 2·N·D_proxy (the frozen reference's forward on
        each proxy batch), D_ref and D_proxy their steps × batch tokens (D_t, the run's training
        tokens, for 0). None of it for a single domain (nothing to train)."""
        if shape.num_domains <= 1:
            return 0.0
        reference_tokens = self.reference_steps * shape.batch_tokens if self.reference_steps else shape.train_tokens
        proxy_tokens = self.proxy_steps * shape.batch_tokens if self.proxy_steps else shape.train_tokens
        return float(6 * shape.num_params * reference_tokens + 8 * shape.num_params * proxy_tokens)


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
