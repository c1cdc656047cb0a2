"""The MixingStrategy contract: the one way a mixing method meets the trainer.

A strategy is a small object with keyword hyperparameters (stored by `__init__`, nothing else,
as in scikit-learn), a start hook that returns p_0, and a round-end hook that turns the round's
feedback into the next mixture. It declares on its class what it needs: the signals of its
feedback (`signals`), so the trainer computes only those and a strategy that needs nothing costs
nothing; and the probe calls beyond metering and eval losses (`capabilities`), so every place
that runs strategies (mixbench's trainer, the Hugging Face callback, a plain torch loop) decides
from the declaration, up front, whether it can serve one — never from its name.
"""

from __future__ import annotations

import copy
import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from mixbench.mixture import Mixture
from mixbench.plugin import Plugin
from mixbench.probe import Probe


class Signal(str, enum.Enum):
    """Feedback a strategy can ask the trainer for."""

    DOMAIN_GRADIENTS = "domain_gradients"  # per-domain sums of the final layer's weight gradient
    # ...and the same sums over two halves of each domain's examples, for inner products free of
    # each domain's sampling noise (twice the accumulators); implies DOMAIN_GRADIENTS
    DOMAIN_GRADIENT_HALVES = "domain_gradient_halves"
    EVAL_LOSSES = "eval_losses"            # per-domain eval loss at every round end
    TRAIN_LOSSES = "train_losses"          # per-domain mean train loss over the round


class Capability(str, enum.Enum):
    """What a strategy needs from the trainer that runs it, beyond its signals, `probe.charge`,
    `probe.for_report` and (with Signal.EVAL_LOSSES) `probe.eval_losses`. mixbench's own trainer
    serves all of them; a user's own training loop (mixbench.integrations) none."""

    PROBE_STEPS = "probe_steps"            # probe.train outside a branch: steps of the run's own model on a
                                           # mixture the strategy picks, from the run's budget (Aioli)
    PROBE_GRADIENTS = "probe_gradients"    # probe.gradient(s): extra batches drawn on demand from a domain or
                                           # the eval set, and their gradients (DGA, DoGE)
    SCRATCH_RUNS = "scratch_runs"          # probe.branch / freeze / weighted steps: scratch copies of the run,
                                           # trained and undone (Skill-It, DoReMi, DoGE)


@dataclass(frozen=True)
class RunContext:
    """What a strategy may know about the run before it starts."""

    domains: tuple[str, ...]
    train_sizes: np.ndarray        # (m,) training examples per domain
    eval_proportions: np.ndarray   # (m,) q: share of the evaluation set per domain, sums to 1
    total_steps: int
    steps_per_round: int
    seed: int

    @property
    def num_domains(self) -> int:
        return len(self.domains)

    @property
    def num_rounds(self) -> int:
        return -(-self.total_steps // self.steps_per_round)


@dataclass(frozen=True)
class DomainGradients:
    """Per-domain sums of the final linear layer's weight gradient over one round.

    sums[i] is g_i, the flattened sum over the round of the gradient of domain i's share of each
    batch loss; counts[i] is n_i, the examples of domain i seen. An accumulator that sketches the
    gradients (later) fills the same fields with shorter vectors whose inner products estimate
    the exact ones.
    """

    sums: np.ndarray     # (m, D)
    counts: np.ndarray   # (m,)
    # With Signal.DOMAIN_GRADIENT_HALVES: each domain's examples alternate between two halves,
    # whose sums and counts add up to the above. ⟨half A mean, half B mean⟩ estimates ‖E g_i‖²
    # without the sampling noise that ‖mean‖² carries.
    half_sums: np.ndarray | None = None     # (2, m, D)
    half_counts: np.ndarray | None = None   # (2, m)


@dataclass(frozen=True)
class RoundFeedback:
    """What the trainer tells a strategy at the end of a round. Signals not asked for are None."""

    round_index: int               # the round that just ended, from 0
    step: int                      # optimiser steps done so far
    mixture: Mixture               # the mixture sampled from during that round
    counts: np.ndarray             # (m,) examples per domain drawn this round
    domain_gradients: DomainGradients | None = None
    eval_losses: np.ndarray | None = None    # (m,) NaN where a domain has no eval examples
    train_losses: np.ndarray | None = None   # (m,) NaN where a domain was not drawn


@dataclass(frozen=True)
class StepFeedback:
    """Per-step information for strategies that observe every step."""

    step: int
    counts: np.ndarray   # (m,) examples per domain in this batch
    loss: float


@dataclass(frozen=True)
class RunShape:
    """The sizes of a run that the paper's App. D overhead formulas are written in."""

    num_params: int      # N
    train_tokens: int    # D_t
    eval_tokens: int     # D_e: tokens of one pass over the evaluation subset
    batch_tokens: int    # tokens of one training batch
    rounds: int          # T
    num_domains: int     # m


class MixingStrategy(Plugin, ABC):
    """Base class of every mixing strategy.

    Subclasses: take hyperparameters as keyword-only `__init__` arguments stored under the same
    names and do nothing else there (see mixbench.plugin); put learned state in attributes ending
    in `_`; validate hyperparameters in `check_params`; return a `Mixture` from `start` and `update`.
    """

    signals: ClassVar[frozenset[Signal]] = frozenset()
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    # Settings of its hyperparameters that change what it needs or does (rnb's unbiased Gram reads
    # other signals): name -> {hyperparameter: value}. The conformance kit checks each besides the
    # defaults.
    variants: ClassVar[dict[str, dict]] = {}
    # The domains a run uses unless told otherwise: "original" (the task's labels) or "regroup".
    default_domains: ClassVar[str] = "original"
    # Where the method comes from, for `mixbench list`: its paper, and its reference code if any.
    source: ClassVar[str] = ""

    def check_params(self) -> None:
        """Raise ValueError with a one-line reason if a hyperparameter is invalid."""

    @abstractmethod
    def start(self, ctx: RunContext) -> Mixture:
        """Called once before training; returns p_0."""

    def prepare(self, probe: Probe) -> Mixture | None:
        """Optional: work before training that needs the model (e.g. Skill-It's skills graph),
        paid through the probe. Returns a new p_0, or None to keep start()'s."""
        return None

    def observe_step(self, feedback: StepFeedback) -> None:
        """Optional per-step hook."""

    @abstractmethod
    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        """Called at the end of each round; returns the mixture for the next round.

        Compute the strategy does itself (a Gram matrix, say) is declared through
        `probe.charge`, so the overhead meter can count it.
        """

    def report_extras(self) -> dict:
        """JSON-able facts about the finished run worth keeping in its results (e.g. rnb's last
        Gram matrix, which `mixbench report` draws)."""
        return {}

    def paper_overhead_flops(self, shape: RunShape) -> float | None:
        """The strategy's extra FLOPs by the paper's App. D formula, for comparison with what the
        meter measured; None if the paper gives none."""
        return None

    def state_dict(self) -> dict:
        """Learned state (attributes ending in `_`), deep-copied: enough to resume exactly."""
        return {k: copy.deepcopy(v) for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, copy.deepcopy(value))


def observes_steps(strategy: MixingStrategy) -> bool:
    """Whether `strategy` has a per-step hook of its own (its draws are then gathered every step)."""
    return type(strategy).observe_step is not MixingStrategy.observe_step


# A scratch run (a skills-graph run, a reference or proxy model) longer than this many times the
# run itself is a typo, not a setting: refused in one line rather than left to run for days.
MAX_SCRATCH_RUNS = 10


def check_scratch_steps(name: str, steps: int, total_steps: int) -> None:
    """Raise ValueError if a scratch run of `steps` steps is longer than MAX_SCRATCH_RUNS × the run."""
    if steps > MAX_SCRATCH_RUNS * total_steps:
        raise ValueError(f"{name} ({steps} steps) must be at most {MAX_SCRATCH_RUNS} × the run's "
                         f"{total_steps} steps")


class FixedMixtureStrategy(MixingStrategy):
    """A mixture chosen once, from what is known before training, and kept for the whole run: it
    needs no signal and costs nothing. Subclasses implement `choose`."""

    @abstractmethod
    def choose(self, ctx: RunContext) -> Mixture:
        """The mixture of the whole run."""

    def start(self, ctx: RunContext) -> Mixture:
        self.mixture_ = self.choose(ctx)
        return self.mixture_

    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        return self.mixture_

    def paper_overhead_flops(self, shape: RunShape) -> float:
        return 0.0
