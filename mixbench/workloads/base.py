"""What the shared trainer trains: a model, how examples become tensors, the loss of a batch and
the per-domain evaluation. One workload per task modality; the trainer and the probe meet a
model only through this face, so every strategy runs unchanged on text and image-text.

    text        causal language modelling, loss on response tokens   (text.py)
    image-text  CLIP-style dual encoder, symmetric InfoNCE            (image_text.py)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
import torch.nn as nn

from mixbench.config import TrainConfig
from mixbench.task import Example


class Split(Protocol):
    """Encoded examples of one split: tensors on the CPU, rows aligned with `domain_ids`."""

    domain_ids: torch.Tensor  # (n,) int64, index into the run's domain tuple

    def __len__(self) -> int: ...

    def subset(self, rows: torch.Tensor) -> Split: ...

    def batch(self, rows, device) -> tuple[torch.Tensor, ...]:
        """The model inputs of `rows`, moved to `device`."""


@dataclass(frozen=True)
class BatchLoss:
    loss: torch.Tensor          # scalar: what is back-propagated, Σ row_loss / Σ row_weight
    row_loss: torch.Tensor      # (B,) each example's summed loss
    row_weight: torch.Tensor    # (B,) what each example counts for (tokens for text, 1 for image-text)
    token_loss: torch.Tensor | None = None   # (B, T) text: each scored token's loss, 0 elsewhere


@dataclass(frozen=True)
class Evaluation:
    row_loss: np.ndarray        # (n,) each eval row's summed loss
    row_weight: np.ndarray      # (n,) what each row counts for (text: its response tokens)
    domain_ids: np.ndarray      # (n,) each row's domain in the run
    num_domains: int
    metrics: dict[str, float] = field(default_factory=dict)          # e.g. retrieval accuracy
    domain_metrics: dict[str, np.ndarray] = field(default_factory=dict)  # the same, per domain

    @property
    def losses(self) -> np.ndarray:
        """(m,) mean loss per run domain; NaN where a domain has no scored row."""
        return self.grouped(self.domain_ids, self.num_domains)

    def grouped(self, groups: np.ndarray, num_groups: int) -> np.ndarray:
        """(num_groups,) mean loss per group of rows under any labelling of them (e.g. the task's
        original domains, whatever domains the run trains on)."""
        return group_mean(self.row_loss, self.row_weight, groups, num_groups)


def group_mean(values: np.ndarray, weights: np.ndarray, groups: np.ndarray, num_groups: int) -> np.ndarray:
    """(num_groups,) Σ values / Σ weights per group of rows; NaN for a group with no weight."""
    total = np.bincount(groups, weights=values, minlength=num_groups)
    weight = np.bincount(groups, weights=weights, minlength=num_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / np.where(weight > 0, weight, 1), np.nan)


class Workload(ABC):
    """A model and its objective. `model.head` is the final nn.Linear the gradient tap sits on."""

    model: nn.Module
    # Forward FLOPs of one example divided by 2·N: the example's "token equivalents", so the
    # 6·N·D training-FLOP rule and the paper's overhead formulas apply to every modality.
    tokens_per_example: float

    @classmethod
    @abstractmethod
    def build(cls, cfg: TrainConfig) -> Workload:
        """The workload with its model built as `cfg` says; a model that cannot train this
        modality is a MixbenchError."""

    @abstractmethod
    def encode(self, examples: list[Example], domains: tuple[str, ...]) -> Split:
        ...

    @abstractmethod
    def loss(self, batch: tuple[torch.Tensor, ...]) -> BatchLoss:
        """The training loss of one batch (the tap, if installed, sees this forward)."""

    @abstractmethod
    def evaluate(self, split: Split, num_domains: int, batch_size: int, device) -> Evaluation:
        """Per-domain loss (and any task metric) on `split`, without gradients."""

    def num_params(self) -> int:
        return self.model.num_params()

    @contextmanager
    def using(self, model: nn.Module) -> Iterator[None]:
        """The workload computes with `model` inside the block (a strategy's frozen reference
        model, which shares the architecture)."""
        saved, self.model = self.model, model
        try:
            yield
        finally:
            self.model = saved


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """The model in eval mode inside the block, back in the mode it was in after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
