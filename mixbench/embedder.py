"""The Embedder contract: texts in, one float32 row per text out.

Embedders are plugins like strategies (entry-point group `mixbench.embedders`). An embedder is
fitted on the training texts first (a no-op for a pretrained model; TF-IDF learns its
vocabulary there) and then embeds any texts, so evaluation examples land in the training space.
An image-feature embedder for image-text tasks fits the same two methods.
"""

from __future__ import annotations

import contextlib
import contextvars
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

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


# -- progress: the stage's one bar, moved from inside embed() --------------------------------------
#
# Regroup draws one labelled bar for the whole embedding stage and calls embed() with
# progress=False, so an embedder (or the library under it) draws no bar of its own. An embedder
# whose calls take long may still move that bar from inside a call through report_progress; one
# that does not simply moves it at the end of each call.

_call_progress: contextvars.ContextVar[Callable[[float], None] | None] = \
    contextvars.ContextVar("mixbench_embed_progress", default=None)


def report_progress(done: float) -> None:
    """For use inside `embed()`: the share (0 to 1) of this call's texts embedded so far. Moves the
    bar of the stage that called it; does nothing when no stage is listening."""
    listener = _call_progress.get()
    if listener is not None:
        listener(min(1.0, max(0.0, float(done))))


def stage_listening() -> bool:
    """Whether a stage's bar listens to report_progress (an embedder then draws no bar of its own)."""
    return _call_progress.get() is not None


@contextlib.contextmanager
def listening(listener: Callable[[float], None]) -> Iterator[None]:
    """Within the block, report_progress calls go to `listener`."""
    token = _call_progress.set(listener)
    try:
        yield
    finally:
        _call_progress.reset(token)
