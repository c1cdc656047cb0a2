"""Task adapters: validated metadata plus a loader of domain-labelled examples."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from mixbench.config import TrainConfig
from mixbench.errors import MixbenchError
from mixbench.plugin import Plugin

MODALITIES = ("text", "image-text")


class TaskDataError(MixbenchError):
    pass


@dataclass(frozen=True)
class Example:
    """One training or evaluation example.

    Text tasks: the loss is taken on `response` only. Image-text tasks: `prompt` is empty,
    `response` is the caption and `image` the picture as an (H, W, 3) uint8 array; the model's
    loss pairs the two (contrastive). The image takes no part in equality or repr.
    """

    prompt: str
    response: str
    domain: str
    image: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TaskInfo:
    name: str
    description: str
    source: str      # where the data comes from (package, URL, path)
    license: str
    version: str     # data version: package version or upstream revision
    modality: str = "text"
    # How many original domains the data has, when the task fixes it (None: counted at load,
    # because it depends on the data files given).
    original_domains: int | None = None

    def __post_init__(self):
        for key in ("name", "description", "source", "license", "version"):
            if not str(getattr(self, key)).strip():
                raise ValueError(f"task metadata field {key!r} is empty")
        if self.modality not in MODALITIES:
            raise ValueError(f"task modality {self.modality!r} is not one of {MODALITIES}")
        if self.original_domains is not None and (
                not isinstance(self.original_domains, int) or self.original_domains < 1):
            raise ValueError(f"task original_domains must be a positive int or None, got {self.original_domains!r}")


@dataclass(frozen=True)
class TaskData:
    train: list[Example]
    eval: list[Example]
    domains: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        if not self.train:
            raise TaskDataError("the task has no training examples")
        if not self.eval:
            raise TaskDataError("the task has no evaluation examples")
        object.__setattr__(self, "domains", tuple(sorted({e.domain for e in self.train})))
        with_image = sum(e.image is not None for e in self.train) + sum(e.image is not None for e in self.eval)
        if with_image not in (0, len(self.train) + len(self.eval)):
            raise TaskDataError(f"{with_image} of {len(self.train) + len(self.eval)} examples have an image: "
                                "a task's examples are either all image-text or all text")

    @property
    def modality(self) -> str:
        return "text" if self.train[0].image is None else "image-text"

    def unseen_eval_domains(self) -> list[str]:
        """Eval domains with no training data (an out-of-domain split has them by design)."""
        return sorted({e.domain for e in self.eval} - set(self.domains))

    def require_eval_in_train(self) -> None:
        """Training needs every eval example in a training domain (q is over training domains)."""
        unseen = self.unseen_eval_domains()
        if unseen:
            raise TaskDataError(
                f"{len(unseen)} evaluation domain(s) have no training data (e.g. {unseen[0]!r}); "
                "use --domains regroup, which assigns eval examples to the nearest training cluster"
            )

    def sizes(self, split: str) -> np.ndarray:
        counts = Counter(e.domain for e in getattr(self, split))
        return np.array([counts.get(d, 0) for d in self.domains], dtype=np.int64)

    def eval_proportions(self) -> np.ndarray:
        """q: the share of the evaluation set in each training domain."""
        sizes = self.sizes("eval").astype(np.float64)
        return sizes / sizes.sum()


class Task(Plugin, ABC):
    """A task adapter. Subclasses set `budget` (the task's default training configuration) and
    implement `info()` and `load()`; `__init__` stores keyword options only (mixbench.plugin)."""

    budget: ClassVar[TrainConfig] = TrainConfig()
    # True when evaluation is out-of-domain by design: no eval domain has training data (runs need regroup).
    eval_domains_unseen: ClassVar[bool] = False

    @abstractmethod
    def info(self) -> TaskInfo:
        ...

    @abstractmethod
    def load(self) -> TaskData:
        """Load and split the data. Deterministic: the split never depends on the run's seed."""

    def status(self) -> str:
        """'ready', or what is missing and how to get it."""
        return "ready"
