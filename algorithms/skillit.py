"""skillit: Skill-It's online data selection (Chen et al., "Skill-it! A Data-Driven Skills
Framework for Understanding and Training Language Models", arXiv 2307.14430, Alg. 1).

Before training, the skills graph A (m × m) is learned: for each skill (domain) i, a scratch copy
of the model trains `graph_steps` steps on skill i alone; A_ij is the relative drop of skill j's
eval loss, (L_j − L_j') / L_j. Those runs are undone afterwards and metered as overhead.

Each round t: p_t ∝ prior ⊙ exp(η · A · Σ_{τ = t−w+1..t} L_eval(τ)), recomputed from the prior
(uniform) every round — the last `window` rounds' per-domain eval losses, summed.

Defaults: window w = 3 (Skill-It's online setting); η = 0.5 and graph_steps = 10 are our
defaults for short runs (Skill-It tunes η per task and trains each graph run for a fixed number
of steps; neither transfers to a 400-step byte-level model). Overhead in the paper's App. D:
6(1+δ)·D_t·N + 2(T+m)·D_e·N — the graph runs (δ·D_t training tokens), m+1 graph evaluations
and one evaluation per round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixbench.mixture import Mixture
from mixbench.probe import Probe
from mixbench.simplex import softmax
from mixbench.strategy import MixingStrategy, RoundFeedback, RunContext, RunShape, Signal


def skills_graph(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """A_ij = (before_j − after_ij) / before_j: row i is the run trained on skill i.
    Non-finite entries (a skill with no eval data) become 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        graph = (before[None, :] - after) / before[None, :]
    return np.where(np.isfinite(graph), graph, 0.0)


def skillit_mixture(graph: np.ndarray, recent_losses: list[np.ndarray], eta: float) -> np.ndarray:
    """p ∝ exp(η · A · Σ recent eval losses) over a uniform prior; NaN losses count as 0."""
    total = np.nansum(np.stack(recent_losses), axis=0) if recent_losses else np.zeros(graph.shape[0])
    total = np.where(np.isfinite(total), total, 0.0)
    return softmax(eta * (graph @ total))


@dataclass(kw_only=True, eq=False)
class SkillIt(MixingStrategy):
    """Skill-It: p ∝ exp(η·A·Σ_{last w rounds} L_eval) with a skills graph learned before training."""

    signals = frozenset({Signal.EVAL_LOSSES})

    eta: float = 0.5
    window: int = 3
    graph_steps: int = 10

    def check_params(self) -> None:
        if not (np.isfinite(self.eta) and self.eta > 0):
            raise ValueError(f"skillit: eta must be positive, got {self.eta}")
        if int(self.window) != self.window or self.window <= 0:
            raise ValueError(f"skillit: window must be a positive integer, got {self.window}")
        if int(self.graph_steps) != self.graph_steps or self.graph_steps <= 0:
            raise ValueError(f"skillit: graph-steps must be a positive integer, got {self.graph_steps}")

    def start(self, ctx: RunContext) -> Mixture:
        self.check_params()
        m = ctx.num_domains
        self.graph_ = np.eye(m)  # until prepare() learns it: each skill helps only itself
        self.recent_ = []
        self.mixture_ = Mixture.uniform(m)
        return self.mixture_

    def prepare(self, probe: Probe) -> Mixture:
        m = len(self.mixture_)
        before = probe.eval_losses()
        after = np.empty((m, m))
        for skill in range(m):
            with probe.branch():  # a scratch copy: undone after, metered as overhead
                probe.train(Mixture(np.eye(m)[skill]), self.graph_steps)
                after[skill] = probe.eval_losses()
        self.graph_ = skills_graph(before, after)
        self.recent_ = [before]
        self.mixture_ = Mixture(skillit_mixture(self.graph_, self.recent_, self.eta))
        return self.mixture_

    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        self.recent_ = (self.recent_ + [np.array(feedback.eval_losses, dtype=np.float64)])[-self.window:]
        self.mixture_ = Mixture(skillit_mixture(self.graph_, self.recent_, self.eta))
        return self.mixture_

    def paper_overhead_flops(self, shape: RunShape) -> float:
        """App. D: 6·δ·D_t·N + 2·(T + m)·D_e·N, with δ·D_t the graph runs' tokens
        (m × graph_steps batches). The meter counts the same: m + 1 graph evaluations and one
        per round but the last (whose evaluation is reporting), i.e. 2·(T + m)·D_e·N."""
        graph_tokens = shape.num_domains * self.graph_steps * shape.batch_tokens
        return float(6 * graph_tokens * shape.num_params
                     + 2 * (shape.rounds + shape.num_domains) * shape.eval_tokens * shape.num_params)
