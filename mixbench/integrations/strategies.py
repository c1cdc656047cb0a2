"""Which mixing strategies run inside a user's own training, and the probe they get there.

Inside a Hugging Face Trainer or a user's loop there is no scratch copy of the run to train, no
batch of a chosen domain to draw on demand and no step budget to take probe steps from: those are
mixbench's trainer's (mixbench.engine). What remains is what the normal training steps give: the
per-domain final-layer gradients (the tap), per-domain train losses, per-domain eval losses when
an evaluation set is given, and `probe.charge` for a strategy's own compute. So rnb, stratified,
static, and any strategy that needs only those run here; the ones below are refused by name.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mixbench.engine.meter import Meter
from mixbench.engine.probe import RunProbe
from mixbench.integrations.errors import IntegrationError
from mixbench.strategy import MixingStrategy, Signal

# Built-ins that buy compute the normal steps do not give, and what it is.
NEEDS_MIXBENCH_TRAINER = {
    "skillit": "scratch training runs to learn its skills graph",
    "aioli": "probe training steps on chosen mixtures every round",
    "dga": "extra gradient batches drawn from each domain",
    "doremi": "reference and proxy model runs before training",
    "doge": "a proxy model run before training",
}
WORKS_HERE = "rnb, stratified, static, or a strategy that needs only domain gradients, train or eval losses"


def resolve_strategy(strategy: str | MixingStrategy, params: dict | None = None) -> MixingStrategy:
    """A strategy instance from a registered name (with `params`) or an instance, checked to run here."""
    from mixbench.registry import strategies

    params = params or {}
    if isinstance(strategy, str):
        name = strategy
        if name in NEEDS_MIXBENCH_TRAINER:
            raise _refused(name)
        strategy = strategies.create(name, **params)
    elif isinstance(strategy, MixingStrategy):
        if params:
            raise IntegrationError(f"strategy parameters {sorted(params)} were given with a strategy instance; "
                                   f"set them on the instance")
        name = next((e.name for e in strategies.entries() if type(strategy) is e.obj), type(strategy).__name__)
        if name in NEEDS_MIXBENCH_TRAINER:
            raise _refused(name)
    else:
        raise IntegrationError(f"strategy must be a registered name or a MixingStrategy, got {type(strategy).__name__}")
    if type(strategy).prepare is not MixingStrategy.prepare:
        raise IntegrationError(f"strategy {name!r} works on the model before training (prepare), which needs "
                               f"mixbench's own trainer; here use {WORKS_HERE}")
    strategy.check_params()
    return strategy


def _refused(name: str) -> IntegrationError:
    return IntegrationError(f"strategy {name!r} needs mixbench's own trainer ({NEEDS_MIXBENCH_TRAINER[name]}); "
                            f"inside your own training use {WORKS_HERE}")


def check_signals(strategy: MixingStrategy, *, can_eval: bool, name: str) -> None:
    if Signal.EVAL_LOSSES in strategy.signals and not can_eval:
        raise IntegrationError(f"strategy {name!r} needs per-domain eval losses: give an evaluation set with a "
                               f"domain per example (or an eval_losses function)")


class IntegrationProbe(RunProbe):
    """mixbench's probe without a mixbench session: `charge` and `for_report` as in mixbench's
    trainer, `eval_losses` from the user's evaluation set (metered as a strategy's probe
    evaluation is), and nothing else: those need mixbench's trainer, and say so."""

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
