"""What does mixbench's trainer cost over a bare torch loop, and what do its evaluations cost?

The bare loop is the same model, batch size, optimiser, learning-rate schedule, gradient clipping
and data as the trainer's, with none of the mixture machinery: draw random rows, forward,
backward, step. The trainer runs the same number of steps with `stratified` (the harness alone)
and with `rnb` (plus the tap and Balance). Printed:

  steps/s of each, and the trainer's over the bare loop's with its evaluations taken out (the
  harness's own cost; target ≥ 0.95);
  the share of the trainer's wall clock spent evaluating at every round end, and with
  --eval-every R (default: one evaluation per 5 rounds, plus the last round's).

Runs alternate (bare, trainer, bare, ...) `--repeats` times and the medians are printed, so a
machine that gets busier during the run distorts both sides alike.

Usage: python benchmarks/harness_overhead.py [--task champ] [--steps N] [--eval-every 5] [--repeats 3]
       [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from mixbench.algorithms.rnb import RnB
from mixbench.algorithms.stratified import Stratified

from mixbench import registry
from mixbench.engine.schedule import cosine_schedule
from mixbench.engine.trainer import train
from mixbench.workloads import build_workload


def bare_loop(data, cfg) -> float:
    """Seconds for cfg.steps plain training steps (the data encoded before the clock starts)."""
    torch.manual_seed(cfg.seed)
    workload = build_workload(data.modality, cfg)
    model = workload.model
    split = workload.encode(data.train, data.domains)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    lr_at = cosine_schedule(cfg.lr, cfg.steps, cfg.warmup_fraction)
    rng = np.random.default_rng(cfg.seed)
    model.train()
    started = time.perf_counter()
    for step in range(cfg.steps):
        batch = split.batch(rng.integers(len(split), size=cfg.batch_size), "cpu")
        loss = workload.loss(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        optimizer.step()
    return time.perf_counter() - started


def trainer_run(data, strategy, cfg) -> tuple[float, float]:
    """(seconds of the training loop, of which evaluating)."""
    history = train(data, strategy, cfg, progress=False)
    evaluating = sum(v for (c, label), v in history.meter.seconds.items() if label == "eval")
    return history.seconds, evaluating


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="champ")
    parser.add_argument("--steps", type=int, default=None, help="[the task's budget]")
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads [torch's default]; 1 keeps a busy machine from distorting the ratio")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    task = registry.tasks.create(args.task)
    data = task.load()
    cfg = task.budget.override(steps=args.steps, device="cpu")
    sparse = cfg.override(eval_every=args.eval_every)
    print(f"{args.task}: {cfg.steps} steps of batch {cfg.batch_size} × {cfg.seq_len}, {cfg.num_rounds} rounds, "
          f"{torch.get_num_threads()} torch threads; medians of {args.repeats} alternating repeats")

    bare, strat, rnb, rnb_sparse = [], [], [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(data, cfg))
        strat.append(trainer_run(data, Stratified(), cfg))
        rnb.append(trainer_run(data, RnB(), cfg))
        rnb_sparse.append(trainer_run(data, RnB(), sparse))

    def median(runs, part=None):
        return statistics.median(r if part is None else part(r) for r in runs)

    bare_s = median(bare)
    print(f"bare torch loop:      {cfg.steps / bare_s:6.2f} steps/s")
    for name, runs in (("trainer, stratified", strat), ("trainer, rnb", rnb)):
        train_s = median(runs, lambda r: r[0] - r[1])
        print(f"{name + ':':21} {cfg.steps / train_s:6.2f} steps/s without its evaluations: "
              f"{bare_s / train_s:.3f} × the bare loop (target ≥ 0.95)")
    for label, runs in (("every round", rnb), (f"--eval-every {args.eval_every}", rnb_sparse)):
        share = median(runs, lambda r: r[1] / r[0])
        print(f"rnb, evaluating {label + ':':17} {100 * share:5.1f} % of the wall clock "
              f"({cfg.steps / median(runs, lambda r: r[0]):.2f} steps/s overall)")


if __name__ == "__main__":
    main()
