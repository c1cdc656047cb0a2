"""The result record every check returns, and the list of checks `mixbench theory` runs."""

from __future__ import annotations

import importlib
import math
import time
from dataclasses import asdict, dataclass, field

# One module per claim, in the order the table prints them. Each exposes
# run(quick: bool, seed: int = 0, **overrides) -> CheckResult.
CHECKS = [
    "mixbench.theory.closed_form",
    "mixbench.theory.limits",
    "mixbench.theory.lemma2",
    "mixbench.theory.lemma5",
    "mixbench.theory.convergence",
    "mixbench.theory.regrouping",
    "mixbench.theory.unbiased_gram",
]


@dataclass
class CheckResult:
    """One claim checked on random instances.

    worst_margin is the smallest measured margin over the instances, in the units the check's
    docstring defines (passing means it is on the right side of that check's threshold, which
    `details["pass_if"]` states). `details` holds the numbers behind it; values must be JSON-able.
    """

    name: str
    claim: str
    instances: int
    passed: bool
    worst_margin: float
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def to_record(self) -> dict:
        return _plain(asdict(self))


def _plain(value):
    """numpy scalars/arrays and tuples -> plain Python, so json.dumps never trips."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):  # NaN/inf are not JSON; say so in words
        return str(value)
    return value


def load(module_name: str):
    return importlib.import_module(module_name)


def run_check(module_name: str, quick: bool, seed: int = 0, **overrides) -> CheckResult:
    """Run one check and record its wall time in the result."""
    start = time.perf_counter()
    result = load(module_name).run(quick=quick, seed=seed, **overrides)
    result.seconds = time.perf_counter() - start
    return result


def run_all(quick: bool, seed: int = 0, checks: list[str] | None = None) -> list[CheckResult]:
    return [run_check(name, quick=quick, seed=seed) for name in (checks or CHECKS)]
