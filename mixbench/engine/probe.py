"""The probe a strategy gets from a live run: every call goes through the run's session and is
metered under "strategy" (see mixbench/probe.py for the contract)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from mixbench.engine.meter import Meter
from mixbench.engine.session import TrainingSession
from mixbench.mixture import Mixture
from mixbench.probe import Probe, check_charge


class RunProbe(Probe):
    """With no session, only `charge` works (enough for a strategy driven by hand)."""

    def __init__(self, meter: Meter, session: TrainingSession | None = None):
        self.meter = meter
        self.session = session

    def charge(self, label: str, flops: float) -> None:
        check_charge(label, flops)
        self.meter.add_flops("strategy", label, flops)

    def eval_losses(self) -> np.ndarray:
        return self._live().evaluate("strategy", "probe_eval").losses

    def gradient(self, domain: int | None = None) -> np.ndarray:
        return self._live().batch_gradient(domain, "strategy", "probe_gradient")

    def train(self, mixture: Mixture, steps: int) -> list[float]:
        session = self._live()
        if session.in_branch:
            return [session.train_step(mixture).loss for _ in range(steps)]
        losses = []
        for _ in range(min(steps, session.steps_left)):
            result = session.train_step(mixture)
            session.record(result)   # training of the run's own model, booked as the loop books it
            losses.append(result.loss)
        return losses

    @contextmanager
    def branch(self):
        with self._live().branch():
            yield

    @property
    def steps_left(self) -> int:
        return self._live().steps_left

    def _live(self) -> TrainingSession:
        if self.session is None:
            raise RuntimeError("this probe is not attached to a training run")
        return self.session
