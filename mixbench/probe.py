"""The probe: the only way a strategy buys compute, every call metered and attributed to it.

In this version the probe meters compute the strategy performs itself (`charge`). Extra
evaluations, extra gradients and probe training steps come with the baselines that need them.
"""

from __future__ import annotations

from mixbench.meter import Meter


class Probe:
    def __init__(self, meter: Meter):
        self._meter = meter

    def charge(self, label: str, flops: float) -> None:
        """Record `flops` of work the strategy did itself under `label` (e.g. "gram")."""
        if flops < 0:
            raise ValueError(f"cannot charge negative FLOPs ({flops}) for {label!r}")
        self._meter.add_flops("strategy", label, flops)
