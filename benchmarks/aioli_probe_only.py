"""Aioli's training without its evaluations: every step on LearnParams' probe mixture
w_j = f on domain j, (1 - f)/(m - 1) elsewhere, j running through random permutations of the
domains as LearnParams does with lp_steps = 1 (`--mode rotate`); or stratified (`--mode uniform`).
It isolates what spending a whole budget on LearnParams' steps costs a from-scratch model, the
regime of the paper run on evals-id (docs/baselines_at_200_steps.md). Prints one JSON line.

    .venv/bin/python benchmarks/aioli_probe_only.py --mode rotate --steps 200 --seed 0
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import numpy as np
from mixbench.algorithms.aioli import probe_mixture

from mixbench.engine import train
from mixbench.mixture import Mixture
from mixbench.registry import tasks
from mixbench.strategy import MixingStrategy


@dataclass(kw_only=True, eq=False)
class ProbeMixturesOnly(MixingStrategy):
    """Spends the whole run, in one round, on LearnParams' rotating probe mixtures (or none)."""

    rotate: bool = True
    one_hot_factor: float = 0.75

    def start(self, ctx):
        self.m_ = ctx.num_domains
        self.rng_ = np.random.default_rng(ctx.seed)
        return Mixture.uniform(self.m_)

    def prepare(self, probe):
        while self.rotate and probe.steps_left > 0:
            for j in self.rng_.permutation(self.m_):
                if probe.steps_left == 0:
                    break
                probe.train(Mixture(probe_mixture(self.m_, j, self.one_hot_factor)), 1)
        return None

    def update(self, feedback, probe):
        return Mixture.uniform(self.m_)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("rotate", "uniform"), default="rotate")
    parser.add_argument("--task", default="evals-id")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one-hot-factor", type=float, default=0.75)
    args = parser.parse_args()
    task = tasks.create(args.task)
    config = task.budget.override(steps=args.steps, steps_per_round=args.steps, seed=args.seed)
    started = time.time()
    history = train(task.load(), ProbeMixturesOnly(rotate=args.mode == "rotate", one_hot_factor=args.one_hot_factor),
                    config, progress=False)
    print(json.dumps({"mode": args.mode, "task": args.task, "steps": args.steps, "seed": args.seed,
                      "seconds": round(time.time() - started),
                      "final_mean_eval_loss": float(np.nanmean(history.rounds[-1].eval_losses)),
                      "train_loss_last20": float(np.mean(history.train_losses[-20:]))}))


if __name__ == "__main__":
    main()
