"""aioli: Aioli's online mixing (Chen et al., "Aioli: A Unified Optimization Framework for
Language Model Data Mixing", arXiv 2411.05735, Alg. 1 with LearnParams).

At each round end, LearnParams estimates how training on each domain moves every domain's eval
loss: visiting domains j in random order, it trains `probe_steps` steps on a mixture tilted
toward j, (1 − ε)·p + ε·e_j, evaluates, and adds the drop L_before − L_after to column j of A.
A is scaled to a maximum absolute entry of 1, then p ← p ⊙ exp(η · 1ᵀA) (column sums: how much
training on j lowered all eval losses), normalised. With `ema` set, the sampled mixture is the
exponential moving average (1 − ema)·p_prev + ema·p_new instead (Aioli's EMA variant).

The probe steps ARE training: they update the run's model and count against its step budget
(the paper's rule), so the overhead is the evaluations: one per probed domain per round, the
paper's 2·T·m·D_e·N. When m·probe_steps exceeds `probe_fraction` of a round, each round probes
a random subset of the domains that fits (the others keep last round's column of A) — our
adaptation for many domains, where the full sweep would use up every round's budget.

Defaults: η = 0.1, ε = 0.5, probe_steps = 1, probe_fraction = 0.5 are our choices for short runs
(Aioli's reference configs tune η per dataset).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixbench.mixture import Mixture
from mixbench.probe import Probe
from mixbench.simplex import exponentiated_update
from mixbench.strategy import MixingStrategy, RoundFeedback, RunContext, RunShape


def aioli_mixture(p: np.ndarray, graph: np.ndarray, eta: float) -> np.ndarray:
    """p ⊙ exp(η · 1ᵀA), with A scaled so its largest |entry| is 1; non-finite entries count as 0."""
    graph = np.where(np.isfinite(graph), graph, 0.0)
    scale = np.abs(graph).max()
    scores = graph.sum(axis=0) / scale if scale > 0 else np.zeros(graph.shape[1])
    return exponentiated_update(p, scores, eta)


@dataclass(kw_only=True, eq=False)
class Aioli(MixingStrategy):
    """Aioli: LearnParams probes each domain, then p ← p ⊙ exp(η·1ᵀA) (EMA variant optional)."""

    eta: float = 0.1
    tilt: float = 0.5
    probe_steps: int = 1
    probe_fraction: float = 0.5
    ema: float = 0.0

    def check_params(self) -> None:
        if not (np.isfinite(self.eta) and self.eta > 0):
            raise ValueError(f"aioli: eta must be positive, got {self.eta}")
        if not 0 < self.tilt <= 1:
            raise ValueError(f"aioli: tilt must be in (0, 1], got {self.tilt}")
        if int(self.probe_steps) != self.probe_steps or self.probe_steps <= 0:
            raise ValueError(f"aioli: probe-steps must be a positive integer, got {self.probe_steps}")
        if not 0 < self.probe_fraction <= 1:
            raise ValueError(f"aioli: probe-fraction must be in (0, 1], got {self.probe_fraction}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"aioli: ema must be in [0, 1), got {self.ema}")

    def start(self, ctx: RunContext) -> Mixture:
        self.check_params()
        budget = int(self.probe_fraction * ctx.steps_per_round)
        if self.probe_steps > budget:
            raise ValueError(f"aioli: probe-steps ({self.probe_steps}) is larger than probe-fraction × "
                             f"steps-per-round ({budget}); lower it or raise --steps-per-round")
        m = ctx.num_domains
        self.probed_per_round_ = min(m, budget // self.probe_steps)
        self.graph_ = np.zeros((m, m))
        self.rng_ = np.random.default_rng(ctx.seed)
        self.mixture_ = Mixture.uniform(m)
        return self.mixture_

    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        m = len(self.mixture_)
        p = self.mixture_.weights
        order = self.rng_.permutation(m)[: self.probed_per_round_]
        before = probe.eval_losses()
        for j in order:
            tilted = (1 - self.tilt) * p + self.tilt * np.eye(m)[j]
            if not probe.train(Mixture(tilted / tilted.sum()), self.probe_steps):
                break  # the run's budget is spent
            after = probe.eval_losses()
            with np.errstate(invalid="ignore"):  # inf - inf: a domain without a usable loss
                drop = before - after
            self.graph_[:, j] = np.where(np.isfinite(drop), drop, 0.0)
            before = after
        new = aioli_mixture(p, self.graph_, self.eta)
        if self.ema > 0:
            new = (1 - self.ema) * p + self.ema * new
        self.mixture_ = Mixture(new / new.sum())
        return self.mixture_

    def paper_overhead_flops(self, shape: RunShape) -> float:
        """App. D: 2·T·m·D_e·N (one evaluation per domain per round). The meter counts
        2·(T − 1)·(m' + 1)·D_e·N: an update after every round but the last, each probing m' ≤ m
        domains (all of them when they fit in probe_fraction of a round) plus the evaluation
        before the first probe. The probe training steps are part of the run's budget: not overhead."""
        return float(2 * shape.rounds * shape.num_domains * shape.eval_tokens * shape.num_params)
