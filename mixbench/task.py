"""Task adapters: validated metadata plus a loader of domain-labelled examples."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from mixbench.errors import MixbenchError

MODALITIES = ("text", "image-text")


class TaskDataError(MixbenchError):
    pass


@dataclass(frozen=True)
class Example:
    """One training or evaluation example: the loss is taken on `response` only."""

    prompt: str
    response: str
    domain: str


@dataclass(frozen=True)
class TaskInfo:
    name: str
    description: str
    source: str      # where the data comes from (package, URL, path)
    license: str
    version: str     # data version: package version or upstream revision
    modality: str = "text"

    def __post_init__(self):
        for key in ("name", "description", "source", "license", "version"):
            if not str(getattr(self, key)).strip():
                raise ValueError(f"task metadata field {key!r} is empty")
        if self.modality not in MODALITIES:
            raise ValueError(f"task modality {self.modality!r} is not one of {MODALITIES}")


@dataclass(frozen=True)
class Budget:
    """A task's default training budget and model size; every field can be overridden."""

    steps: int = 300
    steps_per_round: int = 30
    batch_size: int = 16
    seq_len: int = 256
    lr: float = 3e-3
    eval_per_domain: int = 8    # eval examples per domain used at round ends (fixed subset)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128


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


class Task(ABC):
    """A task adapter. Subclasses set `budget` and implement `info()` and `load()`."""

    budget: ClassVar[Budget] = Budget()

    @abstractmethod
    def info(self) -> TaskInfo:
        ...

    @abstractmethod
    def load(self) -> TaskData:
        """Load and split the data. Deterministic: the split never depends on the run's seed."""

    def status(self) -> str:
        """'ready', or what is missing and how to get it."""
        return "ready"

    @classmethod
    def summary(cls) -> str:
        import inspect

        doc = inspect.getdoc(cls) or ""
        return doc.splitlines()[0] if doc else ""
