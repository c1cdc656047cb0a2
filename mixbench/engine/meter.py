"""The overhead meter: FLOPs, wall-clock seconds and bytes communicated, attributed to who
caused them.

Categories used by the trainer:
  train     forward + backward + optimiser of the normal training steps (6 * N * tokens FLOPs)
  eval      evaluation passes done for reporting only (2 * N * tokens FLOPs)
  tap       the gradient tap's extra work (per-domain accumulator adds) and, in a data-parallel
            run, its all-reduce of the round's per-domain sums (`tap/allreduce`: R&B's only
            communication beyond plain data-parallel training)
  strategy  what the strategy causes: its own compute (e.g. R&B's Gq), probes, evaluations it
            requires
  report    work done only so the report can show it (rnb's last Gram, for the heatmap)
  comm      what data-parallel training itself communicates, whatever the strategy: DDP's
            gradient all-reduce (`comm/gradients`; its seconds overlap the backward and stay
            inside `train/step`) and each step's exchange of the batch's per-example losses
Overhead is `tap` and `strategy`, relative to `train`. In a data-parallel run each process
meters its own work (its share of the batch; the strategy's, which every process repeats), and
the run reports rank 0's meter.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

OVERHEAD_CATEGORIES = ("tap", "strategy")
# What the paper's App. D counts as R&B's cost: the Balance products ("gq" since Balance stopped
# building the Gram; "gram" where a strategy still charges a full Gram).
BALANCE_LABELS = ("gq", "gram")


@dataclass(frozen=True)
class OverheadReport:
    train_flops: float
    overhead_flops: float          # honest total: everything the strategy and the tap caused
    paper_flops: float             # Balance's products only (Gq), what the paper's App. D counts for R&B
    train_seconds: float
    overhead_seconds: float
    flops_by_label: dict
    seconds_by_label: dict
    # Bytes all-reduced or gathered (data-parallel runs only); keyword-only, so it may default.
    bytes_by_label: dict = field(default_factory=dict, kw_only=True)

    @property
    def flops_pct(self) -> float:
        return _pct(self.overhead_flops, self.train_flops)

    @property
    def paper_flops_pct(self) -> float:
        return _pct(self.paper_flops, self.train_flops)

    @property
    def seconds_pct(self) -> float:
        return _pct(self.overhead_seconds, self.train_seconds)

    def to_dict(self) -> dict:
        return {
            "train_flops": self.train_flops,
            "overhead_flops": self.overhead_flops,
            "paper_flops": self.paper_flops,
            "flops_pct": self.flops_pct,
            "paper_flops_pct": self.paper_flops_pct,
            "train_seconds": self.train_seconds,
            "overhead_seconds": self.overhead_seconds,
            "seconds_pct": self.seconds_pct,
            "flops_by_label": dict(self.flops_by_label),
            "seconds_by_label": dict(self.seconds_by_label),
            "bytes_by_label": dict(self.bytes_by_label),
        }


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0


class Meter:
    """Accumulates FLOPs, seconds and bytes per (category, label); `category` decides what is overhead."""

    def __init__(self, synchronize=None):
        # On CUDA the caller passes torch.cuda.synchronize so timings cover the queued kernels.
        self._synchronize = synchronize or (lambda: None)
        self.flops: dict[tuple[str, str], float] = defaultdict(float)
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.bytes: dict[tuple[str, str], float] = defaultdict(float)
        self._open: list[list[float]] = []  # per open timed() block: seconds of the blocks inside it

    def add_flops(self, category: str, label: str, flops: float) -> None:
        self.flops[(category, label)] += float(flops)

    def add_seconds(self, category: str, label: str, seconds: float) -> None:
        self.seconds[(category, label)] += float(seconds)

    def add_bytes(self, category: str, label: str, nbytes: float) -> None:
        self.bytes[(category, label)] += float(nbytes)

    @contextmanager
    def timed(self, category: str, label: str):
        """Time a block. Blocks nest, and each second goes to the innermost block only: a probe's
        training step inside a strategy's update counts as training, not twice."""
        self._synchronize()
        start = time.perf_counter()
        self._open.append([0.0])
        try:
            yield
        finally:
            self._synchronize()
            elapsed = time.perf_counter() - start
            inner = self._open.pop()[0]
            self.seconds[(category, label)] += elapsed - inner
            if self._open:
                self._open[-1][0] += elapsed

    def total_flops(self, *categories: str) -> float:
        return sum(v for (c, _), v in self.flops.items() if c in categories)

    def total_seconds(self, *categories: str) -> float:
        return sum(v for (c, _), v in self.seconds.items() if c in categories)

    def report(self) -> OverheadReport:
        return OverheadReport(
            train_flops=self.total_flops("train"),
            overhead_flops=self.total_flops(*OVERHEAD_CATEGORIES),
            paper_flops=sum(v for (c, lbl), v in self.flops.items() if c == "strategy" and lbl in BALANCE_LABELS),
            train_seconds=self.total_seconds("train"),
            overhead_seconds=self.total_seconds(*OVERHEAD_CATEGORIES),
            flops_by_label={f"{c}/{lbl}": v for (c, lbl), v in sorted(self.flops.items())},
            seconds_by_label={f"{c}/{lbl}": v for (c, lbl), v in sorted(self.seconds.items())},
            bytes_by_label={f"{c}/{lbl}": v for (c, lbl), v in sorted(self.bytes.items())},
        )
