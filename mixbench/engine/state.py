"""Everything a training run changes while it trains, in one object: what a checkpoint saves."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mixbench.engine.history import RunHistory
from mixbench.engine.meter import Meter
from mixbench.engine.sampler import MixtureSampler
from mixbench.mixture import Mixture
from mixbench.strategy import MixingStrategy


@dataclass(frozen=True)
class StepResult:
    """One optimiser step, as the round's feedback and the history need it."""

    step: int                  # the step number just taken, from 1
    loss: float                # the batch's loss (text: mean over its response tokens)
    domains: np.ndarray        # (B,) domain of each example
    row_loss: np.ndarray       # (B,) summed loss per example
    row_weight: np.ndarray     # (B,) what each example counts for (text: its response tokens)


@dataclass
class RunState:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    sampler: MixtureSampler          # draws the training batches
    strategy: MixingStrategy
    meter: Meter
    history: RunHistory
    probe_rng: np.random.Generator   # draws probe batches: probing never shifts the training batches
    mixture: Mixture | None = None   # what the round in progress samples from
    step: int = 0                    # optimiser steps taken on the run's model: the schedule's position
    round_steps: list[StepResult] = field(default_factory=list)   # the steps of the round in progress
    # perf_counter() from which the run's training seconds count (None before its loop starts);
    # a resumed run's is set back by the seconds it had trained before its checkpoint.
    clock_start: float | None = None

    def take_round_steps(self) -> list[StepResult]:
        """The steps recorded since the last call (the round that just ended)."""
        steps, self.round_steps = self.round_steps, []
        return steps
