"""The Embedder contract: texts in, one float32 row per text out.

Embedders are plugins like strategies (entry-point group `mixbench.embedders`). An embedder is
fitted on the training texts first (a no-op for a pretrained model; TF-IDF learns its
vocabulary there) and then embeds any texts, so evaluation examples land in the training space.
An image-feature embedder for image-text tasks fits the same two methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from mixbench.plugin import Plugin


class Embedder(Plugin, ABC):
    """Base class of every embedder. `__init__` stores keyword options only (mixbench.plugin)."""

    @abstractmethod
    def identity(self) -> str:
        """A string naming the embedder and every option that changes its output (cache key)."""

    def fit(self, texts: list[str]) -> None:
        """Learn what the embedder needs from the training texts (default: nothing)."""

    @abstractmethod
    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(n, d) float32 embeddings of `texts`."""
