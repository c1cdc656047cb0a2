"""How far `compare --jobs N` is from `compare --jobs 1`: the same grid both ways, every recorded
number set side by side, the largest differences printed.

The cells are the same computations; what differs is the number of threads each gets. With
--jobs 1 a cell runs in the compare's own process with torch's default threads (the machine's
cores); with --jobs N each runs in its own process with cores // N (OMP_NUM_THREADS and
torch.set_num_threads). torch's CPU kernels split reductions over their threads, so floats are
added in another order. The third grid, --jobs 1 pinned to the threads a --jobs N cell gets,
tells whether that is the whole difference (it is when it matches --jobs N exactly).

    python benchmarks/jobs_tolerance.py [--task synthetic] [--algos stratified,rnb] [--seeds 0,1]
                                        [--steps 40] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

NUMBERS = ("train_losses", "rounds.eval_losses", "rounds.mixture", "metrics.final_reference_eval_loss")


def compare(out: Path, args, jobs: int, threads: int | None) -> None:
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "mixbench", "compare", "--task", args.task, "--algos", args.algos, "--seeds",
               args.seeds, "--domains", "original", "--steps", str(args.steps), "--no-mlflow", "--no-progress",
               "--out", str(out), "--jobs", str(jobs)]
    subprocess.run(command, env=env, check=True, capture_output=True)


def numbers(out: Path) -> dict[str, np.ndarray]:
    """Every number of NUMBERS in every cell, keyed by cell and field."""
    found = {}
    for path in sorted(out.rglob("seed*.json")):
        result = json.loads(path.read_text())
        cell = str(path.relative_to(out))
        found[f"{cell}:train_losses"] = np.array(result["train_losses"], dtype=float)
        found[f"{cell}:eval_losses"] = np.array([r["eval_losses"] for r in result["rounds"]], dtype=float)
        found[f"{cell}:mixture"] = np.array([r["mixture"] for r in result["rounds"]], dtype=float)
        found[f"{cell}:final_loss"] = np.array([result["metrics"]["final_reference_eval_loss"]], dtype=float)
    return found


def largest(a: dict, b: dict) -> tuple[float, float, str]:
    """(max absolute difference, max relative difference, where) over every number."""
    worst = (0.0, 0.0, "none")
    for key in a:
        x, y = a[key], b[key]
        diff = np.abs(x - y)
        rel = diff / np.maximum(np.abs(x), 1e-12)
        if np.nanmax(rel, initial=0.0) > worst[1]:
            worst = (float(np.nanmax(diff)), float(np.nanmax(rel)), key)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="synthetic")
    parser.add_argument("--algos", default="stratified,rnb")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    share = max(1, cores // args.jobs)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        compare(tmp / "one", args, jobs=1, threads=None)
        compare(tmp / "many", args, jobs=args.jobs, threads=None)
        compare(tmp / "one_pinned", args, jobs=1, threads=share)
        one, many, pinned = (numbers(tmp / name) for name in ("one", "many", "one_pinned"))
    print(f"{args.task}, {args.algos}, seeds {args.seeds}, {args.steps} steps; {cores} cores, torch threads: "
          f"--jobs 1 default, --jobs {args.jobs} {share} each")
    for label, other in ((f"--jobs {args.jobs} vs --jobs 1", many), (f"--jobs 1 at {share} thread(s) vs --jobs "
                                                                    f"{args.jobs}", pinned)):
        absolute, relative, where = largest(one if other is many else many, other)
        print(f"  {label}: max |difference| {absolute:.3g}, max relative {relative:.3g} ({where})")


if __name__ == "__main__":
    main()
