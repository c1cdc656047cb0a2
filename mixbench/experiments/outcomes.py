"""How a run, a comparison grid or the paper's protocol ends when it does not simply return its
result: each raises one of these, carrying what it had done (already saved). The command line
turns them into exit codes (mixbench/cli/exit_codes.py); a script catches them by type.

A bad input is a MixbenchError, raised before anything is written; a bug (in a strategy, say)
is raised as itself, after the run's record is saved with status `failed`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:   # compare and the paper's runner import this module: their results are named in words
    from mixbench.experiments.results import RunResult


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped it (or SIGTERM or SIGHUP, which the command line turns into one): `result`
    is what was done until then. A KeyboardInterrupt still, so code that stops on one stops on it."""

    def __init__(self, result, reason: str = "interrupted"):
        super().__init__(reason)
        self.result = result


class RunInterrupted(Interrupted):
    """A run stopped early; its results JSON (status `interrupted`) and checkpoint are saved."""

    result: RunResult


class GridInterrupted(Interrupted):
    """A comparison stopped; the cells it finished are kept, the one it was in can resume.
    `result` is the Grid so far (compare.py): every cell's path, the cells that failed."""


class PaperInterrupted(Interrupted):
    """The paper's protocol stopped; its finished cells are kept for the next invocation.
    `result` is the PaperRun so far (paper/runner.py): the plans, the cells that failed."""


class RunDiverged(Exception):
    """A run's training loss stopped being finite: it ended early, saved with status `diverged`
    (the engine's TrainingDiverged says at which step). Not a bug, nor bad input: the same
    settings diverge again."""

    def __init__(self, result: RunResult):
        super().__init__(result.error)
        self.result = result
