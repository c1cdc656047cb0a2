"""The probe: the only way a strategy buys compute, every call metered and attributed to it.

    charge(label, flops)   compute the strategy did itself (a Gram matrix, say)
    eval_losses()          per-domain eval loss on the eval subset (forward only)
    gradient(domain)       the gradient of one batch from a training domain, or from the eval
                           set with domain=None (an extra forward + backward)
    train(mixture, steps)  training steps on a mixture. On the run's model they ARE training
                           and count against the run's step budget (Aioli's probe steps);
                           inside `with probe.branch():` they are overhead and undone on exit
                           (Skill-It's skills-graph runs)
    branch()               a scratch copy of the run: model, optimiser and sampler restored after
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from mixbench.meter import Meter
from mixbench.mixture import Mixture


class Probe:
    def __init__(self, meter: Meter, bench=None):
        self._meter = meter
        self._bench = bench

    def charge(self, label: str, flops: float) -> None:
        """Record `flops` of work the strategy did itself under `label` (e.g. "gram")."""
        if flops < 0:
            raise ValueError(f"cannot charge negative FLOPs ({flops}) for {label!r}")
        self._meter.add_flops("strategy", label, flops)

    def eval_losses(self) -> np.ndarray:
        return self._need_bench().evaluate("strategy", "probe_eval").losses

    def gradient(self, domain: int | None = None) -> np.ndarray:
        return self._need_bench().batch_gradient(domain, "strategy", "probe_gradient")

    def train(self, mixture: Mixture, steps: int) -> list[float]:
        """Up to `steps` training steps on `mixture`; returns their losses. Outside a branch the
        run's remaining budget caps them (the run never trains past its step budget)."""
        bench = self._need_bench()
        if bench.in_branch:
            return [bench.train_step(mixture, "strategy", "probe_train").loss for _ in range(steps)]
        steps = min(steps, bench.total_steps - bench.step)
        return [bench.train_step(mixture).loss for _ in range(steps)]

    @contextmanager
    def branch(self):
        with self._need_bench().branch():
            yield

    @property
    def steps_left(self) -> int:
        """Training steps left in the run's budget."""
        bench = self._need_bench()
        return bench.total_steps - bench.step

    def _need_bench(self):
        if self._bench is None:
            raise RuntimeError("this probe is not attached to a training run")
        return self._bench
