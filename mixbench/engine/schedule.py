"""The learning-rate schedule: a function of the optimiser step."""

from __future__ import annotations

import math
from collections.abc import Callable


def cosine_schedule(peak: float, steps: int, warmup_fraction: float) -> Callable[[int], float]:
    """Linear warmup, then cosine decay to 10 % of the peak."""
    warmup = max(1, int(warmup_fraction * steps))

    def lr_at(step: int) -> float:
        if step < warmup:
            return peak * (step + 1) / warmup
        done = min(1.0, (step - warmup) / max(1, steps - warmup))
        return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * done)))

    return lr_at
