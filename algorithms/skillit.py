"""skillit: Skill-It's online data selection (Chen et al., "Skill-it! A Data-Driven Skills
Framework for Understanding and Training Language Models", arXiv 2307.14430, Alg. 1), as its
authors run it as a baseline for LM-pretraining data mixing in Aioli (arXiv 2411.05735).

Code followed: HazyResearch/skill-it @ cfabec0db8e880926efd307f5c77e5aeae5ca744
(trainer/mw_trainer.py, main.py, scripts/*/skillit.sh) and HazyResearch/aioli @
910d5249ec55c0e1ea1a25b9a7588640306f31cf (trainer/skillit_trainer.py, mixing_law_fitting.py,
scripts/*/skillit/{graph_learning.sh,run.sh}); "mw:N" below is skill-it's trainer/mw_trainer.py
line N, "sk:N" aioli's trainer/skillit_trainer.py, "fit:N" aioli's mixing_law_fitting.py.

Skills graph, learned in prepare() before training (fit:257-267): from the initial model, one
scratch run per skill i trains H steps on skill i alone (inside probe.branch(): undone after,
metered as overhead), then

    A_ij = (L_j − L_j^(i)) / L_j      L the initial eval losses, L^(i) those after run i

(with normalize_graph = False, the plain drop L_j − L_j^(i)). Skill-It's own repository has no
graph-learning code (README.md:42, "not provided"); this is the authors' rule in Aioli's re-run.

Mixture (mw:69-110 and 178-199, sk:46-50 and 112-120), with L(τ) the per-domain eval losses at
the START of round τ:

    p_0     ∝ exp(η · A · 1)                              (the prior 1 stands in for the losses)
    p_{t+1} ∝ exp(η · A · Σ_{τ = max(0, t−w+1)..t} L(τ))  at the end of round t

recomputed from the uniform prior every round (weights_init = 1). The trainer's evaluation at the
end of round t is the start of round t+1, so update() keeps it for the NEXT update: the window at
the end of round t holds prepare()'s evaluation (the start of round 0) and the evaluations at the
ends of rounds ≤ t−1 (the reference appends its evaluation at `counter % ckpt_steps == 0`, the
first step of a round, mw:139-166, sk:81-89, and updates when the round's steps are done).

Defaults, from the authors' LM-pretraining re-run (aioli scripts/arxiv_stackexchange/skillit/):
  eta = 0.2           run.sh:8 (ETA in 0.2) → :32 (--eta $ETA); the same in scripts/full and
                      scripts/arxiv_books_stackexchange; skill-it's NI scripts/ni/ood/skillit.sh:18
  window = 3          run.sh:31 (--skillit_window 3); skill-it main.py:248-252 (--mw_window, 3)
                      and every skill-it scripts/*/skillit.sh that sets it
  graph_fraction = 1  graph_learning.sh:14-16 (--max_steps 5000, one skill alone) = run.sh:17
                      (--max_steps 5000): each graph run is as long as the run; scripts/full
                      likewise 40000 = 40000. H = graph_fraction × the run's steps (at least 1).
  normalize_graph     fit:267 divides the drop by the start loss (the graphs run.sh:33 loads are
                      named "..._normalized_seed_N.npy")
The round length is the task's steps_per_round (run.sh:10/30 update every 500 of 5000 steps:
10 rounds; champ's budget also has 10).

Deviations from the reference (each listed in docs/baselines.md too):
  - It evaluates after the first step of a round (the optimiser steps at mw:132 before the
    check at mw:139); we use the evaluation before that step (the previous round's end). Knob:
    none — the trainer evaluates at round ends.
  - It evaluates every max_steps/num_ckpts steps whatever the round length (aioli run.sh: every
    250 steps, rounds of 500; skill-it LEGO: every 50, rounds of 1000), so its window of w
    evaluations can span fewer than w rounds; we evaluate once per round, as Skill-It's NI
    scripts do (num_ckpts · update_steps = max_steps). Knob: none.
  - fit:264 takes each graph run's own first checkpoint as L (after that run's first step); we
    evaluate the initial model once for all runs, the m + 1 graph evaluations App. D counts.
    Knob: none.
  - A reference graph run has its own warmup + cosine schedule over its own length; ours follow
    the run's schedule from step 0, the same schedule when graph_fraction = 1 (the default).
  - NaN or inf losses count as 0 and non-finite graph entries as 0 (the reference has no guard
    and would sample from NaN). Knob: none.
  - Not transcribed: skill-it's options that no pretraining script sets (normalize_loss,
    eta_schedule, initialize_loss, dynamic_lambda, ignore_lone_nodes, mw_prior, mw_init,
    main.py:233-289; target_mask, main.py:163, only in the fine-tuning scripts/*/ft/), and the
    1 → 0.5 rewrite of off-diagonal graph entries meant for hand-written 0/1 graphs (mw:38-51,
    sk:36-39; a learned graph reaches 1 only if a loss falls to 0). Knob: none.

Overhead, the R&B paper's App. D: 6·δ·D_t·N + 2·(T + m)·D_e·N — the graph runs (δ·D_t tokens:
m runs of H batches), m + 1 graph evaluations and one evaluation per round but the last.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixbench.mixture import Mixture
from mixbench.probe import Probe
from mixbench.simplex import softmax
from mixbench.strategy import (
    Capability,
    MixingStrategy,
    RoundFeedback,
    RunContext,
    RunShape,
    Signal,
    check_scratch_steps,
)


def skills_graph(before: np.ndarray, after: np.ndarray, normalize: bool = True) -> np.ndarray:
    """A_ij = (before_j − after_ij) / before_j (fit:267), or the plain drop when not `normalize`;
    row i is the run trained on skill i. Non-finite entries (a skill with no eval data) become 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = before[None, :] - after
        graph = drop / before[None, :] if normalize else drop
    return np.where(np.isfinite(graph), graph, 0.0)


def skillit_mixture(graph: np.ndarray, losses: np.ndarray, eta: float) -> np.ndarray:
    """p ∝ exp(η · A · losses) over the uniform prior (mw:199, sk:120); non-finite losses count as 0."""
    losses = np.where(np.isfinite(losses), losses, 0.0)
    return softmax(eta * (graph @ losses))


def window_sum(start_losses: list[np.ndarray], num_domains: int) -> np.ndarray:
    """Σ of the window's per-domain losses (mw:194, sk:116); NaN and inf count as 0."""
    if not start_losses:
        return np.zeros(num_domains)
    stacked = np.stack(start_losses)
    return np.where(np.isfinite(stacked), stacked, 0.0).sum(axis=0)


@dataclass(kw_only=True, eq=False)
class SkillIt(MixingStrategy):
    """Skill-It: p ∝ exp(η·A·Σ last w round-start eval losses), A a skills graph learned before training."""

    signals = frozenset({Signal.EVAL_LOSSES})
    capabilities = frozenset({Capability.SCRATCH_RUNS})   # one scratch run per skill for the skills graph
    source = ("Chen et al. 2023, arXiv 2307.14430, Alg. 1; HazyResearch/skill-it@cfabec0 trainer/mw_trainer.py, "
              "graph and defaults from HazyResearch/aioli@910d524 (mixing_law_fitting.py, scripts/*/skillit)")

    eta: float = 0.2
    window: int = 3
    graph_fraction: float = 1.0
    normalize_graph: bool = True

    def check_params(self) -> None:
        if not (np.isfinite(self.eta) and self.eta > 0):
            raise ValueError(f"skillit: eta must be positive, got {self.eta}")
        if int(self.window) != self.window or self.window <= 0:
            raise ValueError(f"skillit: window must be a positive integer, got {self.window}")
        if not (np.isfinite(self.graph_fraction) and self.graph_fraction > 0):
            raise ValueError(f"skillit: graph-fraction must be positive, got {self.graph_fraction}")

    def graph_steps(self, total_steps: int) -> int:
        """H: each skill's graph run, graph_fraction of the run's steps, at least one."""
        return max(1, round(self.graph_fraction * total_steps))

    def start(self, ctx: RunContext) -> Mixture:
        self.check_params()
        m = ctx.num_domains
        self.graph_steps_ = self.graph_steps(ctx.total_steps)
        check_scratch_steps("skillit: graph runs (graph-fraction × steps)", self.graph_steps_, ctx.total_steps)
        self.graph_ = np.eye(m)      # until prepare() learns it: each skill helps only itself
        self.start_losses_ = []      # the eval losses at the starts of the last `window` rounds
        self.mixture_ = Mixture(skillit_mixture(self.graph_, np.ones(m), self.eta))
        return self.mixture_

    def prepare(self, probe: Probe) -> Mixture:
        m = len(self.mixture_)
        before = probe.eval_losses()
        after = np.empty((m, m))
        for skill in range(m):
            with probe.branch():  # a scratch copy of the run: undone after, metered as overhead
                probe.train(Mixture(np.eye(m)[skill]), self.graph_steps_)
                after[skill] = probe.eval_losses()
        self.graph_ = skills_graph(before, after, self.normalize_graph)
        self.start_losses_ = [before]   # the start of round 0
        # Round 0 has no losses yet: the reference puts the prior (ones) in their place (mw:82, 110; sk:50).
        self.mixture_ = Mixture(skillit_mixture(self.graph_, np.ones(m), self.eta))
        return self.mixture_

    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        m = len(self.mixture_)
        self.mixture_ = Mixture(skillit_mixture(self.graph_, window_sum(self.start_losses_, m), self.eta))
        # This round's end is the next round's start: it enters the window at the next update.
        start_of_next = np.array(feedback.eval_losses, dtype=np.float64)
        self.start_losses_ = (self.start_losses_ + [start_of_next])[-self.window:]
        return self.mixture_

    def paper_overhead_flops(self, shape: RunShape) -> float:
        """App. D: 6·δ·D_t·N + 2·(T + m)·D_e·N, with δ·D_t the graph runs' tokens (m runs of H
        batches, H from the run's steps D_t / batch tokens). The meter counts the same: m + 1
        graph evaluations and one per round but the last (whose evaluation is reporting)."""
        total_steps = shape.train_tokens // shape.batch_tokens if shape.batch_tokens else 0
        graph_tokens = shape.num_domains * self.graph_steps(total_steps) * shape.batch_tokens
        return float(6 * graph_tokens * shape.num_params
                     + 2 * (shape.rounds + shape.num_domains) * shape.eval_tokens * shape.num_params)
