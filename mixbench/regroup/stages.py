"""How Regroup's long stages (embedding a task's texts, the k-means sweep) keep the user informed:
one log line before the stage says what it does, how much, about how long (from a rate measured
on this machine just now, and on what) and where its result is cached; one labelled bar moves
while it runs; its seconds are recorded for the run's summary and results.

A first run on a large task spends minutes here with nothing else to show, so the line comes
before the work, and the estimate is a measurement, never a constant tuned on another machine.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("mixbench.regroup")

_OFF = {"", "0", "false", "no", "off"}


def bars_allowed(progress: bool) -> bool:
    """Whether a bar may be drawn: asked for, and not switched off by TQDM_DISABLE (which tqdm
    itself reads only when no `disable=` is passed, and mixbench always passes one)."""
    return progress and os.environ.get("TQDM_DISABLE", "").strip().lower() in _OFF


def bar(total: int, desc: str, unit: str, progress: bool):
    """The stage's one labelled tqdm bar (a disabled one when bars are off)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not bars_allowed(progress), leave=False,
                dynamic_ncols=True)


def about(seconds: float) -> str:
    """'about 40 s', 'about 3 min', 'about 1.4 h': an estimate, rounded as an estimate should be."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {max(1, round(seconds, -1) if seconds >= 20 else round(seconds)):.0f} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60):.0f} min"
    return f"about {seconds / 3600:.1f} h"


def took(seconds: float) -> str:
    """A measured duration in words: '0.4 s', '12 s', '3.2 min'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


class Timer:
    """Seconds since it was made (perf_counter)."""

    def __init__(self):
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


@contextmanager
def timed(into: dict, name: str) -> Iterator[None]:
    """Adds the block's seconds to `into[name]` (also when it raises: a stage cut short still took them)."""
    timer = Timer()
    try:
        yield
    finally:
        into[name] = into.get(name, 0.0) + timer.seconds
