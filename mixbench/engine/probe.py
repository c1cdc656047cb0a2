"""The probe a strategy gets from a live run: every call goes through the run's session and is
metered under "strategy" (see mixbench/probe.py for the contract)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from mixbench.engine.meter import Meter
from mixbench.engine.session import FrozenRunModel, TrainingSession
from mixbench.mixture import Mixture
from mixbench.probe import FrozenModel, Probe, Weigh, check_charge


class RunProbe(Probe):
    """With no session, only `charge` works (enough for a strategy driven by hand)."""

    def __init__(self, meter: Meter, session: TrainingSession | None = None):
        self.meter = meter
        self.session = session

    def charge(self, label: str, flops: float) -> None:
        check_charge(label, flops)
        self.meter.add_flops("strategy", label, flops)

    @contextmanager
    def for_report(self, label: str, flops: float):
        check_charge(label, flops)
        with self.meter.timed("report", label):
            yield
        self.meter.add_flops("report", label, flops)

    def eval_losses(self) -> np.ndarray:
        return self._live().evaluate("strategy", "probe_eval").losses

    def gradient(self, domain: int | None = None) -> np.ndarray:
        return self._live().batch_gradient(domain, "strategy", "probe_gradient")

    def gradients(self, sources) -> np.ndarray:
        if len(sources) == 0:
            raise ValueError("gradients needs at least one source")
        return self._live().batch_gradients(list(sources), "strategy", "probe_gradient")

    def train(self, mixture: Mixture, steps: int, *, weigh: Weigh | None = None,
              reference: FrozenModel | None = None) -> list[float]:
        session = self._live()
        if reference is not None and not isinstance(reference, FrozenRunModel):
            raise TypeError("reference must come from this probe's freeze()")
        if weigh is None and reference is not None:
            raise ValueError("a reference model is only used by weighted steps: pass weigh too")
        if session.in_branch:
            return [session.train_step(mixture, weigh, reference).loss for _ in range(steps)]
        if weigh is not None:
            raise RuntimeError("weighted training steps are only allowed inside probe.branch()")
        losses = []
        for _ in range(min(steps, session.steps_left)):
            result = session.train_step(mixture)
            session.record(result)   # training of the run's own model, booked as the loop books it
            losses.append(result.loss)
        return losses

    def freeze(self) -> FrozenModel:
        return self._live().freeze()

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
