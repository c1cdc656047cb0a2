"""The strategy under test as the conformance kit hands it to the RoundDriver: each hook goes
through to the strategy, and what the hook did is checked on the way.

The driver calls a strategy's hooks as a training run does, and asks nothing of what they return
but a mixture it can build. The kit asks more, and names where: which hook, in which round,
raised, returned something other than a valid Mixture, called a probe method the strategy did not
declare, or changed the feedback it was handed. Each is a ConformanceFailure, one line.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from mixbench.mixture import Mixture
from mixbench.probe import Probe
from mixbench.strategy import MixingStrategy, RoundFeedback, RunContext, StepFeedback, observes_steps


class ConformanceFailure(AssertionError):
    """What the kit found wrong inside a hook, naming the hook; passed on as it is through the
    hooks around it (a probe step's observe_step inside an update, say)."""


class WatchedStrategy:
    """`strategy`'s hooks, each call checked; the RoundDriver drives this in its place.

    probe          the SyntheticProbe the hooks are given: a call it refused is reported as the
                   calling hook's failure, even if the strategy caught the refusal
    num_domains    the run's m, which every mixture must have
    kind           the run's kind of feedback, named in update's failures
    watch_inputs   also fail an update that modifies its feedback
    """

    def __init__(self, strategy: MixingStrategy, probe, *, num_domains: int, kind: str, watch_inputs: bool = False):
        self.strategy, self.probe = strategy, probe
        self.num_domains, self.kind, self.watch_inputs = num_domains, kind, watch_inputs
        self.round_index = 0                        # the round in progress (the run sets it): names observe_step
        self.feedbacks: list[RoundFeedback] = []    # every update's feedback, as the driver built it

    @property
    def signals(self):
        return self.strategy.signals

    def start(self, ctx: RunContext) -> Mixture:
        return self.valid("start", self.called("start", self.strategy.start, ctx))

    def prepare(self, probe: Probe) -> Mixture | None:
        p = self.called("prepare", self.strategy.prepare, probe)
        return None if p is None else self.valid("prepare", p)

    def observe_step(self, feedback: StepFeedback) -> None:
        # The driver calls this every step (the watcher has the hook); the strategy only sees the
        # steps if it has a hook of its own, as in a run.
        if observes_steps(self.strategy):
            self.called(f"observe_step of round {self.round_index}", self.strategy.observe_step, feedback)

    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        where = f"update of round {feedback.round_index} ({self.kind} feedback)"
        self.feedbacks.append(feedback)
        before = copy.deepcopy(feedback) if self.watch_inputs else None
        p = self.valid(where, self.called(where, self.strategy.update, feedback, probe))
        changed = first_difference(before, feedback) if before is not None else None
        if changed is not None:
            raise ConformanceFailure(f"{where} modified feedback.{changed}")
        return p

    def state_dict(self) -> dict:
        return self.strategy.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.strategy.load_state_dict(state)

    def called(self, where: str, hook: Callable, *args):
        """hook(*args); an exception it raises, or a probe call it should not have made, is the
        strategy's failure, named by `where`."""
        try:
            result = hook(*args)
        except ConformanceFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - any exception from the strategy fails the check
            self._refused_probe_call(where)
            raise ConformanceFailure(f"{where} raised {type(exc).__name__}: {exc}") from exc
        self._refused_probe_call(where)
        return result

    def valid(self, where: str, p) -> Mixture:
        """`p`, if it is a valid mixture over the run's domains."""
        m = self.num_domains
        if not isinstance(p, Mixture):
            raise ConformanceFailure(f"{where} returned {type(p).__name__}, not a Mixture")
        if len(p) != m:
            raise ConformanceFailure(f"{where} returned {len(p)} weights for {m} domains")
        w = p.weights
        if not np.all(np.isfinite(w)):
            raise ConformanceFailure(f"{where} returned non-finite weights {w.tolist()}")
        if not (np.all(w >= 0) and abs(w.sum() - 1) < 1e-6):
            raise ConformanceFailure(f"{where} returned weights off the simplex {w.tolist()}")
        return p

    def _refused_probe_call(self, where: str) -> None:
        refused, self.probe.refused = self.probe.refused, None
        if refused is not None:
            raise ConformanceFailure(f"{where} {refused}")


def watch(strategy: MixingStrategy, probe, **options) -> WatchedStrategy:
    """A WatchedStrategy of `strategy` (options as WatchedStrategy's), of a class named as the
    strategy's: the engine names a strategy by its type where it reports on it (a state that a
    checkpoint cannot hold), and the name a user knows is the strategy's, not the watcher's."""
    named = type(type(strategy).__name__, (WatchedStrategy,), {"__doc__": WatchedStrategy.__doc__})
    return named(strategy, probe, **options)


def first_difference(a: RoundFeedback, b: RoundFeedback) -> str | None:
    """The first field in which two round feedbacks differ (their domain gradients' included),
    or None; NaN equals NaN."""
    pairs = [(name, getattr(a, name), getattr(b, name)) for name in ("counts", "eval_losses", "train_losses")]
    pairs.append(("mixture", a.mixture.weights, b.mixture.weights))
    ga, gb = a.domain_gradients, b.domain_gradients
    if (ga is None) != (gb is None):
        return "domain_gradients"
    if ga is not None:
        pairs += [(f"domain_gradients.{name}", getattr(ga, name), getattr(gb, name))
                  for name in ("sums", "counts", "half_sums", "half_counts")]
    for name, x, y in pairs:
        if (x is None) != (y is None) or (x is not None and not np.array_equal(x, y, equal_nan=True)):
            return name
    return None
