"""The probe: the only way a strategy buys compute, every call metered and attributed to it.

    charge(label, flops)   compute the strategy did itself (a Gram matrix, say)
    eval_losses()          per-domain eval loss on the eval subset (forward only)
    gradient(domain)       the gradient of one batch from a training domain, or from the eval
                           set with domain=None (an extra forward + backward)
    train(mixture, steps)  training steps on a mixture. On the run's model they ARE training
                           and count against the run's step budget (Aioli's probe steps);
                           inside `with probe.branch():` they are overhead and undone on exit
                           (Skill-It's skills-graph runs)
    branch()               a scratch copy of the run: model, optimiser and sampler restored after
    steps_left             training steps left in the run's budget

The trainer hands a strategy a probe into the live run (mixbench.engine.probe); the conformance
kit hands it one that answers from a seeded generator (mixbench.testing).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager

import numpy as np

from mixbench.mixture import Mixture


class Probe(ABC):
    @abstractmethod
    def charge(self, label: str, flops: float) -> None:
        """Record `flops` of work the strategy did itself under `label` (e.g. "gram")."""

    @abstractmethod
    def eval_losses(self) -> np.ndarray:
        """(m,) eval loss per domain on the fixed eval subset; NaN where a domain has none."""

    @abstractmethod
    def gradient(self, domain: int | None = None) -> np.ndarray:
        """The flattened gradient of one batch drawn from training domain `domain`, or from the
        eval set when None, with respect to every parameter; nothing is stepped."""

    @abstractmethod
    def train(self, mixture: Mixture, steps: int) -> list[float]:
        """Up to `steps` training steps on `mixture`; returns their losses. Outside a branch the
        run's remaining budget caps them (the run never trains past its step budget)."""

    @abstractmethod
    def branch(self) -> AbstractContextManager:
        """Everything inside, training steps included, is undone on exit."""

    @property
    @abstractmethod
    def steps_left(self) -> int:
        """Training steps left in the run's budget."""


def check_charge(label: str, flops: float) -> None:
    """The one rule on what a strategy may charge: a finite, non-negative number of FLOPs."""
    if not (flops >= 0 and np.isfinite(flops)):
        raise ValueError(f"cannot charge {flops} FLOPs for {label!r}")
