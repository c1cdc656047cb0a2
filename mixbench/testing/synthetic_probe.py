"""The probe the conformance kit hands a strategy: the trainer's API (mixbench.probe), answered
by a synthetic run (mixbench.testing.synthetic_run), and only as far as the strategy declared.

A strategy declares the probe calls it makes beyond `charge` and `for_report`: `capabilities`,
and Signal.EVAL_LOSSES for `eval_losses`. A loop that cannot serve a capability (a user's own
training loop) refuses the strategy up front from that declaration, so a call made without it
would work under mixbench's trainer and fail elsewhere. Here it fails the check, in one line
naming what to declare:

    eval_losses             Signal.EVAL_LOSSES
    gradient, gradients     Capability.PROBE_GRADIENTS
    train outside a branch  Capability.PROBE_STEPS   (steps of the run: the run's own synthetic steps)
    branch, freeze, and train inside a branch (weighted or not)   Capability.SCRATCH_RUNS

Calls against the probe's contract (weighted steps outside a branch, a reference that is not from
`freeze`, nested branches) fail the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np

from mixbench.mixture import Mixture
from mixbench.probe import FrozenModel, Probe, Weigh, check_charge
from mixbench.strategy import Capability, Signal

# probe.train calls outside a branch with no step left to take, before a strategy is taken to be
# waiting in a loop for steps that will never come.
MAX_CALLS_WITHOUT_STEPS = 100


class RefusedProbeCall(AssertionError):
    """A probe call the strategy may not make: not declared, or against the probe's contract."""


class SyntheticProbe(Probe):
    """The probe into `run` (the SyntheticRun that makes it: not imported here, which imports
    this), serving what `signals` and `capabilities` declare.

    A refused call raises RefusedProbeCall and is kept in `refused` (the first one), so the kit
    reports it even when the strategy catches the exception.
    """

    def __init__(self, run, signals, capabilities):
        self.run = run
        self.signals, self.capabilities = frozenset(signals), frozenset(capabilities)
        self.charged = 0.0
        self.in_branch = False
        self.refused: str | None = None
        self.calls_without_steps = 0

    def charge(self, label: str, flops: float) -> None:
        check_charge(label, flops)
        self.charged += flops

    def eval_losses(self) -> np.ndarray:
        self._needs(Signal.EVAL_LOSSES, "probe.eval_losses")
        return self.run.eval_losses()

    def gradient(self, domain: int | None = None) -> np.ndarray:
        self._needs(Capability.PROBE_GRADIENTS, "probe.gradient")
        self._check_sources("probe.gradient", [domain])
        return self.run.batch_gradient(self.run.batch_size)

    def gradients(self, sources: Sequence[int | None]) -> np.ndarray:
        self._needs(Capability.PROBE_GRADIENTS, "probe.gradients")
        sources = list(sources)
        self._check_sources("probe.gradients", sources)
        rows = max(1, self.run.batch_size // len(sources))   # one batch shared, at least a row each
        return np.stack([self.run.batch_gradient(rows) for _ in sources])

    def train(self, mixture: Mixture, steps: int, *, weigh: Weigh | None = None,
              reference: FrozenModel | None = None) -> list[float]:
        if not (isinstance(mixture, Mixture) and len(mixture) == self.run.num_domains):
            self._refuse(f"called probe.train with {mixture!r}, not a Mixture over the run's {self.run.num_domains} "
                         "domains")
        if reference is not None and (weigh is None or not isinstance(reference, FrozenModel)):
            self._refuse("called probe.train with a reference that is not from probe.freeze(), or without weigh")
        if self.in_branch:
            return [self.run.scratch_step(mixture, weigh, reference is not None) for _ in range(steps)]
        if weigh is not None:
            self._refuse("called probe.train(weigh=...) outside probe.branch(): weighted steps would change the "
                         "run's own objective")
        self._needs(Capability.PROBE_STEPS, "probe.train outside a branch")
        taken = min(steps, self.steps_left)
        if taken == 0 and steps > 0:
            self.calls_without_steps += 1
            if self.calls_without_steps > MAX_CALLS_WITHOUT_STEPS:
                self._refuse(f"called probe.train {self.calls_without_steps} times with probe.steps_left at 0: "
                             "stop asking once it returns fewer losses than asked")
        # Steps of the run's own model: counted in the round in progress, as the trainer counts them.
        return [self.run.train_step(mixture) for _ in range(taken)]

    def freeze(self) -> FrozenModel:
        self._needs(Capability.SCRATCH_RUNS, "probe.freeze")
        return FrozenModel()

    @contextmanager
    def branch(self):
        self._needs(Capability.SCRATCH_RUNS, "probe.branch")
        if self.in_branch:
            self._refuse("called probe.branch() inside a branch: branches do not nest")
        sampler = self.run.sampler.state_dict()
        self.in_branch = True
        try:
            yield
        finally:   # undone: the run's sampler draws on as if the branch had never been
            self.in_branch = False
            self.run.sampler.load_state_dict(sampler)

    @property
    def steps_left(self) -> int:
        return self.run.steps_left

    def _needs(self, need: Signal | Capability, call: str) -> None:
        declared, where = (self.signals, "signals") if isinstance(need, Signal) else (self.capabilities, "capabilities")
        if need not in declared:
            self._refuse(f"called {call}, which needs {type(need).__name__}.{need.name}: declare it in the "
                         f"strategy's `{where}`")

    def _check_sources(self, call: str, sources: list) -> None:
        m = self.run.num_domains
        if not sources or not all(s is None or (isinstance(s, (int, np.integer)) and 0 <= s < m) for s in sources):
            self._refuse(f"called {call} with sources {sources}: each must be a domain in [0, {m}) or None")

    def _refuse(self, why: str) -> None:
        self.refused = self.refused or why
        raise RefusedProbeCall(why)
