"""Everything a training run changes while it trains, in one object: what a checkpoint saves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mixbench.engine.history import RunHistory
from mixbench.engine.meter import Meter
from mixbench.engine.rounds import RoundDriver
from mixbench.engine.sampler import MixtureSampler


@dataclass(frozen=True)
class StepResult:
    """One optimiser step, as the history and the callbacks see it."""

    step: int                  # the step number just taken, from 1
    loss: float                # the batch's loss (text: mean over its response tokens)
    rows: np.ndarray           # (B,) the global batch: example indices into the training split
    domains: np.ndarray        # (B,) domain of each example
    row_loss: np.ndarray       # (B,) summed loss per example
    row_weight: np.ndarray     # (B,) what each example counts for (text: its response tokens)


@dataclass
class RunState:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    sampler: MixtureSampler          # draws the training batches
    driver: RoundDriver              # the strategy, its mixture and the round in progress
    meter: Meter
    history: RunHistory
    probe_rng: np.random.Generator   # draws probe batches: probing never shifts the training batches
    step: int = 0                    # optimiser steps taken on the run's model: the schedule's position
    # perf_counter() from which the run's training seconds count (None before its loop starts);
    # a resumed run's is set back by the seconds it had trained before its checkpoint.
    clock_start: float | None = None
