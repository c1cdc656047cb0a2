"""Fixed-seed reproduction check: rerun a small comparison and compare it with a golden file.

    mixbench repro check results/repro_golden.json    # exit 1 on any difference
    mixbench repro update results/repro_golden.json   # rewrite the golden file

The golden file records the torch/numpy versions and the platform it was made on. Results are
deterministic for a seed on one CPU build; across builds float summation order can differ, so
numbers are compared within RTOL/ATOL below.
"""

from __future__ import annotations

import json
import platform
from importlib.metadata import version
from pathlib import Path

from mixbench.errors import MixbenchError

RTOL, ATOL = 1e-5, 1e-7
ALGOS = ("stratified", "static", "rnb")
OVERRIDES = {"steps": 24, "steps_per_round": 6, "seed": 0, "device": "cpu"}


def measure() -> dict:
    from mixbench import registry
    from mixbench.engine import train

    task = registry.tasks.create("synthetic")
    data = task.load()
    out = {}
    for algo in ALGOS:
        history = train(data, registry.strategies.create(algo), task.budget.override(**OVERRIDES), progress=False)
        out[algo] = {"final_mean_eval_loss": history.final_mean_eval_loss, "final_mixture": history.final_mixture,
                     "train_losses": history.train_losses}
    return out


def compare(measured: dict, golden: dict) -> list[str]:
    """Every number that differs beyond tolerance, as 'algo.field[i]: measured vs golden'."""
    problems = []
    for algo, fields in golden["results"].items():
        if algo not in measured:
            problems.append(f"{algo}: missing from the rerun")
            continue
        for name, expected in fields.items():
            got = measured[algo][name]
            pairs = zip(got, expected) if isinstance(expected, list) else [(got, expected)]
            if isinstance(expected, list) and len(got) != len(expected):
                problems.append(f"{algo}.{name}: {len(got)} values, golden has {len(expected)}")
                continue
            for i, (a, b) in enumerate(pairs):
                if abs(a - b) > ATOL + RTOL * abs(b):
                    problems.append(f"{algo}.{name}[{i}]: {a!r} vs golden {b!r}")
    return problems


def environment() -> dict:
    return {"torch": version("torch"), "numpy": version("numpy"), "platform": platform.platform(),
            "python": platform.python_version()}


def write_golden(path: Path, measured: dict) -> None:
    """A golden file of the numbers `measured`, with the settings and the environment they were made in."""
    Path(path).write_text(json.dumps({"environment": environment(), "overrides": OVERRIDES, "results": measured},
                                     indent=1) + "\n")


def read_golden(path: Path) -> dict:
    """The golden file at `path`; one that cannot be read is a MixbenchError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise MixbenchError(f"cannot read golden file {path}: {exc}") from None


if __name__ == "__main__":
    # The older spelling, `python -m mixbench.experiments.repro check GOLDEN`, is `mixbench repro`:
    # run that command rather than import this module and silently do nothing.
    import runpy
    import sys

    sys.argv = ["mixbench", "repro", *sys.argv[1:]]
    runpy.run_module("mixbench", run_name="__main__")
