"""The pre-registration of a task's report: everything its confirmatory verdicts were fixed to
before any run, as data, with a digest the report prints in its header.

It holds each row's strategy, domains, hyperparameters, rounds and registered seeds; the training
budget; the k values of the sweep; the claims tested, the tests, α, the correction and the
non-inferiority margin. A later `mixbench paper` under the same --out with another registration
is another protocol (it starts a new history); seeds a command runs beyond a row's registered ones
are exploratory: reported apart, with the looks counted, never in a confirmatory verdict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from mixbench.experiments.paper import protocol


@dataclass(frozen=True)
class RegisteredRow:
    key: str
    algo: str
    domains: str
    params: dict          # every hyperparameter the protocol sets for it (its defaults are its own)
    rounds: int | None    # mixture updates over the run, where the protocol fixes them
    seeds: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"key": self.key, "algo": self.algo, "domains": self.domains, "params": self.params,
                "rounds": self.rounds, "seeds": list(self.seeds)}


@dataclass(frozen=True)
class Registration:
    task: str
    rows: tuple[RegisteredRow, ...]
    budget: dict          # the training settings every row runs with (its own steps_per_round aside)
    ks: tuple[int, ...]
    claims: tuple[str, ...]

    def seeds(self, row_key: str) -> tuple[int, ...]:
        return next(r.seeds for r in self.rows if r.key == row_key)

    def to_dict(self) -> dict:
        body = {"task": self.task, "rows": [r.to_dict() for r in self.rows], "budget": self.budget,
                "k_sweep": list(self.ks), "claims": list(self.claims), "alpha": protocol.ALPHA,
                "correction": protocol.CORRECTION, "noninferiority_margin": protocol.NONINFERIORITY_MARGIN,
                "tests": list(protocol.TESTS), "bootstrap": {"resamples": protocol.BOOTSTRAP_RESAMPLES,
                                                             "seed": protocol.BOOTSTRAP_SEED}}
        return {**body, "digest": digest(body)}


def digest(body: dict) -> str:
    """sha256 of the registration's canonical JSON: 16 hex digits name it in the report."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def registered_seeds(row: protocol.Row, quick: bool) -> tuple[int, ...]:
    """A row's pre-registered seeds: its tier's, or --quick's for every row."""
    return protocol.QUICK_SEEDS if quick else row.seeds
