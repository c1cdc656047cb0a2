"""aioli: Aioli's online mixing (Chen et al., "Aioli: A Unified Optimization Framework for
Language Model Data Mixing", arXiv 2411.05735, Alg. 1 and its LearnParams subroutine), as the
authors' code runs it: HazyResearch/aioli at commit 910d5249ec55c0e1ea1a25b9a7588640306f31cf,
trainer/aioli_trainer.py (cited below as `trainer:LINE`).

Rule. Every round t = 0 … T−1 STARTS with LearnParams (trainer:309-317), which estimates how
training on each domain moves every domain's eval loss:

    L ← eval losses now                                          trainer:310-315
    for j in lp_rounds random permutations of the m domains:     trainer:123
        train lp_steps steps on w_j = f·e_j + (1 − f)/(m − 1)·(1 − e_j)   trainer:125-151
        L' ← eval losses;  Ĝ[:, j] += L − L';  L ← L'            trainer:154-161
    Ĝ ← Ĝ / lp_rounds                                            trainer:164
    A ← Ĝ W⁻ᵀ  (W_j = w_j: de-mixes the probe mixtures; f < 1 only)  trainer:166-179
    (diagonal: A ← diag(Ĝ_jj / f) instead)                       trainer:181-189

then normalises A (normalize_a: A ← A − min(A) if min(A) < 0, then A ← A / ΣA; trainer:324-331)
and sets the round's mixture from the column sums 1ᵀA (how much training on j lowered all eval
losses; trainer:334-345):

    EMA (use_ema):   Ā_t = (1 − ema)·A_t + ema·Ā_{t−1},  Ā_0 = A_0;   p_t ∝ exp(η·1ᵀĀ_t)
    no EMA:          p_t ∝ p_{t−1} ⊙ exp(η·1ᵀA_t),  p_{−1} uniform

The rest of the round trains on p_t. LearnParams' steps are the run's own training: the run's
model and optimiser, counted against the round's steps (trainer:321, 397: a round is
update_steps steps in all). Here round 0's LearnParams runs in prepare(), each later one at the
start of update() — right after the round-end evaluation, which is LearnParams' first L (the
trainer's, same model: the strategy declares EVAL_LOSSES rather than evaluating twice).

Defaults, from the 7-domain SlimPajama run scripts/full/aioli/run.sh (of the published runs the
nearest our tasks' 4–6 domains): η = 1 (lines 10, 32), ema = 0.1 (lines 12, 37), f =
one_hot_factor = 0.75 (line 36), normalize_a on (line 38). diagonal off: main.py:355-359's
default. lp_rounds = lp_steps = 1 are ours (the script has 2 and 10, lines 30-31; see below).
Other published runs: scripts/arxiv_stackexchange/aioli/run.sh (m = 2) has η 0.2, ema 0.1,
f 0.625, lp_rounds 4, lp_steps 4 (lines 4, 7, 29-32); scripts/arxiv_books_stackexchange/aioli/
run.sh (m = 3) has η 0.1, ema 0.5, f 0.5, lp_rounds 4, lp_steps 6 (lines 4, 7, 27-30); all
three normalise A and use the EMA. main.py's own defaults (lp_rounds 1, lp_steps 5, f 1, no
EMA, no normalisation, η none; main.py:226-230, 307-353) are used by no published script.

Differences from the reference:
  - lp_rounds = lp_steps = 1 (the script: 2 and 10). LearnParams takes lp_rounds·m·lp_steps
    steps of each round; the script's 140 of 200 would not fit our rounds (synthetic: 10 steps,
    4 domains; champ: 40 steps, 6 domains), ours take 4/10 and 6/40 (the arxiv_stackexchange
    run takes 32/250). Restore with --lp-rounds 2 --lp-steps 10 and a --steps-per-round above
    2·10·m. When LearnParams does not fit in a round it is still run whole (a warning says so):
    the round then trains on LearnParams' mixtures only.
  - LearnParams' batches draw each example's domain from w_j; the reference fills each batch
    with a fixed int(w_j·batch) examples per domain when f < 1 (dataset/slimpj_dataset.py
    :192-213, via trainer:129-130). The probe samples from a mixture; no knob.
  - The domain order comes from numpy's Generator seeded by the run seed, the reference's from
    the global legacy RandomState (main.py:383): the same rule, another random stream.
  - Never NaN: an eval loss that is not finite gives a loss drop of 0, and an A that
    normalisation would divide by 0 (all entries equal, none positive) gives equal column sums; the reference
    would propagate the NaN. One domain: p = [1] and no LearnParams (the reference divides by
    m − 1 = 0). If the run's budget ends inside LearnParams, the mixture is kept (no round
    follows to use it).
  - Not carried over: the transfer setting (--aioli_prior/--prior_steps: a static mixture for
    the first steps; the published runs use none, or a uniform one for 0 steps) and the Skill-It
    warm start (--graph_path).
f must exceed 1/m so that W is invertible (and w_j leans toward j).

Overhead: App. D of R&B (arXiv 2505.00358) gives 2·T·m·D_e·N, one evaluation per domain per
round; see paper_overhead_flops for what the meter counts.
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass

import numpy as np

from mixbench.mixture import Mixture
from mixbench.probe import Probe
from mixbench.simplex import exponentiated_update, softmax
from mixbench.strategy import Capability, MixingStrategy, RoundFeedback, RunContext, RunShape, Signal

log = logging.getLogger(__name__)


def probe_mixture(num_domains: int, domain: int, one_hot_factor: float) -> np.ndarray:
    """w_j: f on `domain`, the rest shared equally by the others (trainer:125-126)."""
    w = np.full(num_domains, (1.0 - one_hot_factor) / (num_domains - 1))
    w[domain] = one_hot_factor
    return w


def demix(drops: np.ndarray, one_hot_factor: float, diagonal: bool = False) -> np.ndarray:
    """A from the loss drops Ĝ measured on the probe mixtures.

    Ĝ[i, j] = Σ_k A[i, k]·w_j[k] (training on w_j moves loss i by A's row i along w_j), so
    A = Ĝ W⁻ᵀ, row by row a solve of W x = Ĝ[i] (trainer:166-179). With `diagonal`, only
    A_jj = Ĝ_jj / f is kept (trainer:181-189). f = 1: the probes were one-hot, A = Ĝ.
    """
    if one_hot_factor == 1:
        return drops
    if diagonal:
        return np.diag(np.diag(drops) / one_hot_factor)
    m = drops.shape[0]
    mixtures = np.stack([probe_mixture(m, j, one_hot_factor) for j in range(m)])
    return np.linalg.solve(mixtures, drops.T).T


def demix_flops(num_domains: int) -> float:
    """FLOPs of the de-mixing solve: the LU of W (2m³/3) and m right-hand sides (2m² each)."""
    return 8.0 * num_domains ** 3 / 3.0


def normalize_graph(graph: np.ndarray) -> np.ndarray:
    """Shift A up to a minimum of 0 if it has negative entries, then scale it to sum to 1
    (trainer:324-331). An A that sums to 0 after the shift (all entries equal, none positive)
    stays all zeros, where the reference divides 0 by 0."""
    lowest = graph.min()
    if lowest < 0:
        graph = graph - lowest
    total = graph.sum()
    return graph / total if total > 0 else np.zeros_like(graph)


@dataclass(kw_only=True, eq=False)
class Aioli(MixingStrategy):
    """Aioli: each round LearnParams estimates A from probe steps; p ∝ exp(η·1ᵀĀ), Ā an EMA of A."""

    signals = frozenset({Signal.EVAL_LOSSES})
    capabilities = frozenset({Capability.PROBE_STEPS})   # LearnParams' steps, from the run's budget
    source = ("Chen et al. 2025, arXiv 2411.05735, Alg. 1 + LearnParams; code HazyResearch/aioli@910d524 "
              "trainer/aioli_trainer.py, defaults scripts/full/aioli/run.sh")

    eta: float = 1.0
    lp_rounds: int = 1
    lp_steps: int = 1
    one_hot_factor: float = 0.75
    use_ema: bool = True
    ema: float = 0.1
    normalize_a: bool = True
    diagonal: bool = False

    def check_params(self) -> None:
        def real(value) -> bool:
            return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)

        if not (real(self.eta) and self.eta > 0):
            raise ValueError(f"aioli: eta must be positive, got {self.eta!r}")
        for name in ("lp_rounds", "lp_steps"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0):
                raise ValueError(f"aioli: {name.replace('_', '-')} must be a positive integer, got {value!r}")
        if not (real(self.one_hot_factor) and 0 < self.one_hot_factor <= 1):
            raise ValueError(f"aioli: one-hot-factor must be in (0, 1], got {self.one_hot_factor!r}")
        if not (real(self.ema) and 0 <= self.ema <= 1):
            raise ValueError(f"aioli: ema must be in [0, 1], got {self.ema!r}")
        for name in ("use_ema", "normalize_a", "diagonal"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"aioli: {name.replace('_', '-')} must be true or false, got {getattr(self, name)!r}")

    def start(self, ctx: RunContext) -> Mixture:
        self.check_params()
        m = ctx.num_domains
        if m > 1 and self.one_hot_factor <= 1 / m:
            raise ValueError(f"aioli: one-hot-factor must be above 1/m = {1 / m:.4g} for {m} domains "
                             f"(else the probe mixtures do not lean toward their domain), got {self.one_hot_factor}")
        learn_steps = self.lp_rounds * m * self.lp_steps
        if m > 1 and learn_steps >= ctx.steps_per_round:
            log.warning("aioli: LearnParams takes lp-rounds × m × lp-steps = %d steps, a round only %d: rounds "
                        "train on LearnParams' mixtures only; raise --steps-per-round or lower --lp-steps",
                        learn_steps, ctx.steps_per_round)
        self.rng_ = np.random.default_rng(ctx.seed)
        self.mixture_ = Mixture.uniform(m)
        self.ema_graph_ = None   # Ā, from the first LearnParams on
        return self.mixture_

    def prepare(self, probe: Probe) -> Mixture:
        """Round 0's LearnParams, from the untrained model's eval losses."""
        return self._learn_and_mix(probe.eval_losses(), probe)

    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        """The next round's LearnParams, from this round's closing eval losses."""
        return self._learn_and_mix(feedback.eval_losses, probe)

    def _learn_and_mix(self, losses: np.ndarray, probe: Probe) -> Mixture:
        m = len(self.mixture_)
        if m == 1:
            return self.mixture_
        graph = self._learn_params(losses, probe)
        if graph is None:
            return self.mixture_
        if self.normalize_a:
            graph = normalize_graph(graph)
        if self.use_ema:
            self.ema_graph_ = graph if self.ema_graph_ is None else (1 - self.ema) * graph + self.ema * self.ema_graph_
            p = softmax(self.eta * self.ema_graph_.sum(axis=0))
        else:
            p = exponentiated_update(self.mixture_.weights, graph.sum(axis=0), self.eta)
        self.mixture_ = Mixture(p)
        return self.mixture_

    def _learn_params(self, losses: np.ndarray, probe: Probe) -> np.ndarray | None:
        """A, from lp_rounds sweeps of probe steps on the run's model; None if the run's budget
        ran out on the way."""
        m = len(self.mixture_)
        drops = np.zeros((m, m))
        before = np.asarray(losses, dtype=np.float64)
        order = np.concatenate([self.rng_.permutation(m) for _ in range(self.lp_rounds)])
        for j in order:
            mixture = Mixture(probe_mixture(m, j, self.one_hot_factor))
            if len(probe.train(mixture, self.lp_steps)) < self.lp_steps:
                return None
            after = probe.eval_losses()
            with np.errstate(invalid="ignore"):   # inf − inf: a domain without a usable loss
                drop = before - after
            drops[:, j] += np.where(np.isfinite(drop), drop, 0.0)
            before = after
        drops /= self.lp_rounds
        if self.one_hot_factor < 1 and not self.diagonal:
            probe.charge("demix", demix_flops(m))
        return demix(drops, self.one_hot_factor, self.diagonal)

    def paper_overhead_flops(self, shape: RunShape) -> float:
        """App. D: 2·T·m·D_e·N (one evaluation per domain per round). The meter counts, per
        round (T LearnParams: round 0's in prepare), one evaluation before the sweep (round 0's
        the probe's; later ones the round-end evaluation the strategy declares it needs) and one
        after each of the lp_rounds·m probe runs, plus the de-mixing solve when f < 1:
        2·T·(lp_rounds·m + 1)·D_e·N + T·8m³/3. LearnParams' training steps are the run's own
        training (its budget), not overhead."""
        return float(2 * shape.rounds * shape.num_domains * shape.eval_tokens * shape.num_params)
