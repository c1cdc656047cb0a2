"""Which mixing strategies run inside a user's own training, and the probe they get there.

Inside a Hugging Face Trainer or a user's loop there is no scratch copy of the run to train, no
batch of a chosen domain to draw on demand and no step budget to take probe steps from: those are
mixbench's trainer's (mixbench.engine), and a strategy declares that it needs them in its
`capabilities`. What remains is what the normal training steps give: the per-domain final-layer
gradients (the tap), per-domain train losses, per-domain eval losses when an evaluation set is
given, and `probe.charge` for a strategy's own compute. A strategy is refused up front when it
declares a capability, or eval losses without an evaluation set: by its declarations, never by
its name, so a plugin is judged as a built-in is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mixbench.engine.meter import Meter
from mixbench.engine.probe import RunProbe
from mixbench.integrations.errors import IntegrationError
from mixbench.strategy import Capability, MixingStrategy, Signal

# What to use instead of a strategy the integrations cannot serve.
WORKS_HERE = ("a strategy that declares no capabilities (rnb, stratified, static, or your own that reads only "
              "domain gradients, train or eval losses)")


def resolve_strategy(strategy: str | MixingStrategy, params: dict | None = None) -> MixingStrategy:
    """A strategy instance from a registered name (with `params`) or an instance, its
    hyperparameters checked."""
    from mixbench.registry import strategies

    params = params or {}
    if isinstance(strategy, str):
        strategy = strategies.create(strategy, **params)
    elif isinstance(strategy, MixingStrategy):
        if params:
            raise IntegrationError(f"strategy parameters {sorted(params)} were given with a strategy instance; "
                                   f"set them on the instance")
    else:
        raise IntegrationError(f"strategy must be a registered name or a MixingStrategy, got {type(strategy).__name__}")
    try:
        strategy.check_params()
    except ValueError as exc:
        raise IntegrationError(str(exc)) from None
    return strategy


def check_served(strategy: MixingStrategy, *, can_eval: bool, name: str) -> None:
    """Refuse, up front and in one line, a strategy whose declared needs a user's own training
    cannot serve: capabilities (probe steps, probe gradients, scratch runs: mixbench's trainer's),
    or eval losses without an evaluation set. Built-ins and plugins alike, by declaration."""
    missing = sorted(c.value for c in set(strategy.capabilities) - IntegrationProbe.serves)
    if missing:
        needs = ", ".join(CAPABILITY_WORDS.get(c, c) for c in missing)
        raise IntegrationError(f"strategy {name!r} needs {needs}, which only mixbench's own trainer serves; inside "
                               f"your own training use {WORKS_HERE}")
    if Signal.EVAL_LOSSES in strategy.signals and not can_eval:
        raise IntegrationError(f"strategy {name!r} needs per-domain eval losses: give an evaluation set with a "
                               f"domain per example (or an eval_losses function)")


# How the refusal names each capability.
CAPABILITY_WORDS = {
    Capability.PROBE_STEPS.value: "probe training steps on mixtures of its own",
    Capability.PROBE_GRADIENTS.value: "extra gradient batches drawn from chosen domains",
    Capability.SCRATCH_RUNS.value: "scratch training runs of the model",
}


class IntegrationProbe(RunProbe):
    """mixbench's probe without a mixbench session: `charge` and `for_report` as in mixbench's
    trainer, `eval_losses` from the user's evaluation set (metered as a strategy's probe
    evaluation is), and none of the capabilities: those need mixbench's trainer, and say so."""

    serves: frozenset[Capability] = frozenset()

    def __init__(self, meter: Meter, eval_losses: Callable[[], np.ndarray] | None, steps_left: Callable[[], int]):
        super().__init__(meter)
        self._eval_losses, self._steps_left = eval_losses, steps_left

    def eval_losses(self) -> np.ndarray:
        if self._eval_losses is None:
            raise IntegrationError("the strategy asked for eval losses, but no evaluation set with domains was given")
        with self.meter.timed("strategy", "probe_eval"):
            return self._eval_losses()

    def gradient(self, domain=None):
        raise _unavailable("gradient")

    def gradients(self, sources):
        raise _unavailable("gradients")

    def train(self, mixture, steps, *, weigh=None, reference=None):
        raise _unavailable("train")

    def freeze(self):
        raise _unavailable("freeze")

    def branch(self):
        raise _unavailable("branch")

    @property
    def steps_left(self) -> int:
        return self._steps_left()


def _unavailable(call: str) -> IntegrationError:
    return IntegrationError(f"the strategy called probe.{call}(), which needs mixbench's own trainer; inside your "
                            f"own training use {WORKS_HERE}")
