"""How long a compare grid has left, from the cells that finished: their mean wall seconds per
cell, times the cells still to run, divided by the cells run at a time. Cells of one grid differ
in cost (a probing baseline takes several times a plain run's steps), so it is an estimate, and
says what it rests on."""

from __future__ import annotations

import math

from mixbench.regroup.stages import about


class GridClock:
    def __init__(self, cells: int, jobs: int = 1):
        self.cells, self.jobs = cells, max(1, jobs)
        self.seconds: list[float] = []

    def finished(self, seconds: float) -> None:
        """A cell of this grid ended after `seconds` of wall time (failed ones count: they took it)."""
        self.seconds.append(seconds)

    def left(self) -> str:
        """'about 12 min left (4 cells, 2 at a time, at 330 s per cell so far)', or '' before any cell
        has ended or after the last."""
        remaining = self.cells - len(self.seconds)
        if not self.seconds or remaining <= 0:
            return ""
        per_cell = sum(self.seconds) / len(self.seconds)
        rounds = math.ceil(remaining / min(self.jobs, remaining))
        at_once = f", {self.jobs} at a time" if self.jobs > 1 and remaining > 1 else ""
        return (f"{about(rounds * per_cell)} left ({remaining} cell{'s' if remaining > 1 else ''}"
                f"{at_once}, at {per_cell:.0f} s per cell so far)")

