"""The probe: the only way a strategy buys compute, every call metered and attributed to it.

    charge(label, flops)   compute the strategy did itself (a Gram matrix, say)
    for_report(label, flops)  a block of work done only for the run's report, not for the
                           mixture (rnb's last Gram, drawn as a heatmap): metered apart, not overhead
    eval_losses()          per-domain eval loss on the eval subset (forward only)
    gradient(domain)       the gradient of one batch from a training domain, or from the eval
                           set with domain=None (an extra forward + backward)
    gradients(sources)     one batch shared equally among several sources (domains, None for the
                           eval set) and each share's gradient: the domain slices of one batch,
                           for the price of one batch (DoGE's per-domain gradients)
    train(mixture, steps)  training steps on a mixture. On the run's model they ARE training
                           and count against the run's step budget (Aioli's probe steps);
                           inside `with probe.branch():` they are overhead and undone on exit
                           (Skill-It's skills-graph runs)
    train(..., weigh=f)    inside a branch only: each step's loss is Σ_x w_x·loss_x with the
                           per-example weights w = f(BatchLosses) the strategy picks after seeing
                           the batch's losses (DoReMi's and DoGE's proxy runs)
    freeze()               a frozen copy of the model as it is now, whose losses on each weighted
                           step's batch `train(..., reference=...)` hands to `weigh` (DoReMi's
                           reference model)
    branch()               a scratch copy of the run: model, optimiser and sampler restored after
    steps_left             training steps left in the run's budget

The trainer hands a strategy a probe into the live run (mixbench.engine.probe); the conformance
kit hands it one into a synthetic run on a tiny head, serving only the calls the strategy
declares (mixbench.testing).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np

from mixbench.mixture import Mixture


@dataclass(frozen=True)
class BatchLosses:
    """One training batch's losses, shown to a strategy's `weigh` rule before the step is taken.

    The plain training loss of the batch is Σ row_loss / Σ row_weight (text: the mean over its
    response tokens), i.e. per-example weights 1 / Σ row_weight.
    """

    domains: np.ndarray              # (n,) training domain of each example
    row_loss: np.ndarray             # (n,) each example's summed loss under the model being trained
    row_weight: np.ndarray           # (n,) what each example counts for (text: its tokens)
    reference_loss: np.ndarray | None = None   # (n,) the same under the frozen reference, if given
    # Text workloads also show the losses token by token (row_loss is their row sum): (n, T), 0
    # where a position is not scored. None where the loss has no tokens (image-text).
    token_loss: np.ndarray | None = None
    reference_token_loss: np.ndarray | None = None


# A strategy's rule for one weighted step: the batch's losses in, per-example weights (n,) out.
Weigh = Callable[[BatchLosses], np.ndarray]


class FrozenModel:
    """A frozen copy of the run's model taken by `Probe.freeze()`; opaque to strategies, which only
    hand it back to `Probe.train(..., reference=...)`."""


class Probe(ABC):
    @abstractmethod
    def charge(self, label: str, flops: float) -> None:
        """Record `flops` of work the strategy did itself under `label` (e.g. "gram")."""

    def for_report(self, label: str, flops: float) -> AbstractContextManager:
        """Wrap work done only so the run's report can show it (its `flops`, and the seconds
        inside the block, are kept apart from the strategy's overhead). A probe that meters
        nothing may leave it as it is."""
        check_charge(label, flops)
        return nullcontext()

    @abstractmethod
    def eval_losses(self) -> np.ndarray:
        """(m,) eval loss per domain on the fixed eval subset; NaN where a domain has none."""

    @abstractmethod
    def gradient(self, domain: int | None = None) -> np.ndarray:
        """The flattened gradient of one batch drawn from training domain `domain`, or from the
        eval set when None, with respect to every parameter; nothing is stepped."""

    @abstractmethod
    def gradients(self, sources: Sequence[int | None]) -> np.ndarray:
        """(k, D): one batch of the run's batch size split equally among the k `sources` (a
        training domain, or None for the eval set; at least one row each), and the gradient of
        each source's mean loss on its rows, as `gradient` flattens it. The rows together cost
        one batch's forward and backward."""

    @abstractmethod
    def train(self, mixture: Mixture, steps: int, *, weigh: Weigh | None = None,
              reference: FrozenModel | None = None) -> list[float]:
        """Up to `steps` training steps on `mixture`; returns their losses. Outside a branch the
        run's remaining budget caps them (the run never trains past its step budget).

        With `weigh` (inside a branch only: the run's own objective is never changed), each step
        shows the batch's losses to `weigh`, and `reference`'s on the same examples when given,
        then back-propagates Σ_x w_x·row_loss_x with the weights it returns; the returned losses
        are those weighted losses."""

    @abstractmethod
    def freeze(self) -> FrozenModel:
        """A frozen copy of the model as it is now (inside a branch: the branch's model), kept
        after the branch ends; its forward passes on weighted steps are metered as overhead."""

    @abstractmethod
    def branch(self) -> AbstractContextManager:
        """Everything inside, training steps included, is undone on exit."""

    @property
    @abstractmethod
    def steps_left(self) -> int:
        """Training steps left in the run's budget."""


def check_weights(weights, batch: BatchLosses) -> np.ndarray:
    """The one rule on what `weigh` may return: a finite, non-negative weight per example."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != batch.row_loss.shape:
        raise ValueError(f"weigh returned {weights.shape} weights for a batch of {batch.row_loss.shape[0]} examples")
    if not np.all(np.isfinite(weights) & (weights >= 0)):
        raise ValueError("weigh returned weights that are negative or not finite")
    return weights


def check_charge(label: str, flops: float) -> None:
    """The one rule on what a strategy may charge: a finite, non-negative number of FLOPs."""
    if not (flops >= 0 and np.isfinite(flops)):
        raise ValueError(f"cannot charge {flops} FLOPs for {label!r}")
