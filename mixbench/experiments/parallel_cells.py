"""`mixbench compare --jobs N`: a grid's cells run N at a time, each in its own process.

Each cell is `mixbench compare-cell SPEC` (a hidden command running the same `run_cell` a
sequential compare calls, with the cell's RunSettings as JSON, so a cell resumes from its
checkpoint as before, and holds its lock while it runs), with its share of the CPU's threads
(OMP_NUM_THREADS and torch.set_num_threads = cores // N) and its output in a log beside its
results (seed<N>.log). The console gets one line per finished cell. A cell that fails, for
whatever reason, is reported and the others go on. Ctrl-C (or SIGTERM) stops every cell: each
saves its record and checkpoint as an interrupted run does, and the grid resumes on the next
`compare`. A cell ends with the compare that started it, even one killed outright (SIGKILL):
it is told by SIGTERM (mixbench/engine/orphans.py) and saves as if interrupted.

How a cell ended is read from what it left, not from how its process exited: the results JSON
it wrote (its status) and, for a cell that wrote none, whether its process succeeded and the last
`error:` line of its log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from mixbench.errors import MixbenchError
from mixbench.experiments.grid_clock import GridClock
from mixbench.experiments.results import RunResult
from mixbench.experiments.settings import RunSettings

# The hidden command a cell runs as (mixbench/cli/compare.py).
CELL_COMMAND = [sys.executable, "-m", "mixbench", "compare-cell"]
POLL_SECONDS = 0.2
GRACE_SECONDS = 5.0   # after Ctrl-C, how long cells have to stop by themselves before they are told


def threads_per_job(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


@dataclass(frozen=True)
class CellSpec:
    """What `mixbench compare-cell` is given: the cell's settings, its share of the threads, what a
    finished cell must have run with to be kept (compare.CellSettings as a dict, for a cell it
    had to wait for), whether another is refused, and the pid of the compare it ends with."""

    settings: RunSettings
    threads: int
    reuse: dict
    keep: bool
    parent: int

    def to_json(self) -> str:
        return json.dumps({"settings": self.settings.to_dict(), "threads": self.threads, "reuse": self.reuse,
                           "keep": self.keep, "parent": self.parent})

    @classmethod
    def from_json(cls, spec: str) -> CellSpec:
        """In the cell's own process."""
        try:
            values = json.loads(spec)
            return cls(RunSettings.from_dict(values["settings"]), int(values["threads"]), dict(values["reuse"]),
                       bool(values["keep"]), int(values["parent"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise MixbenchError(f"malformed cell spec ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class _FileStamp:
    """Which file is at a path, and as of when: results are written by renaming a new file over
    the old, so a file written since has another stamp."""

    inode: int
    mtime_ns: int
    size: int

    @classmethod
    def of(cls, path: Path) -> _FileStamp | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return cls(stat.st_ino, stat.st_mtime_ns, stat.st_size)


@dataclass
class _Running:
    name: str
    results: Path
    log: Path
    process: subprocess.Popen
    before: _FileStamp | None   # the results file there when the cell started (an earlier run's)
    started: float = field(default_factory=time.perf_counter)

    def wrote_results(self) -> bool:
        """Whether this cell's process wrote the results file (not an earlier run of the cell)."""
        return _FileStamp.of(self.results) not in (None, self.before)


def cell_spec(settings: RunSettings, threads: int, reuse: dict | None = None, keep: bool = False) -> str:
    """The argument of `mixbench compare-cell` for a cell of this process's grid."""
    return CellSpec(settings, threads, reuse or {}, keep, os.getpid()).to_json()


def read_cell_spec(spec: str) -> tuple[RunSettings, int]:
    """`cell_spec`'s settings and threads."""
    cell = CellSpec.from_json(spec)
    return cell.settings, cell.threads


def run_cells(cells: list[RunSettings], names: list[str], jobs: int, reuse: list[dict], keep: bool) -> list[str]:
    """Run each cell (named by `names`; `reuse` and `keep` as CellSpec has them), `jobs` at a time;
    returns the failed cells, each with its reason. Raises KeyboardInterrupt once every cell has
    stopped, if interrupted."""
    threads = threads_per_job(jobs)
    queue = [(CellSpec(cell, threads, r, keep, os.getpid()), name) for cell, r, name in zip(cells, reuse, names)]
    running, failed = [], []
    done = 0
    clock = GridClock(len(cells), jobs)
    try:
        while queue or running:
            while queue and len(running) < jobs:
                running.append(_start(*queue.pop(0)))
            time.sleep(POLL_SECONDS)
            for cell in [c for c in running if c.process.poll() is not None]:
                running.remove(cell)
                done += 1
                clock.finished(time.perf_counter() - cell.started)
                line, failure = _outcome(cell, stopping=False)
                left = clock.left()
                click.echo(f"[{done}/{len(cells)}] {cell.name}: {line}{'; ' + left if left else ''}", err=True)
                if failure:
                    failed.append(f"{cell.name}: {failure}")
    except KeyboardInterrupt:
        _stop(running)
        for cell in running:
            click.echo(f"  {cell.name}: {_outcome(cell, stopping=True)[0]}", err=True)
        raise
    return failed


def _start(cell: CellSpec, name: str) -> _Running:
    settings, threads = cell.settings, cell.threads
    results = settings.result_path
    log = results.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    before = _FileStamp.of(results)
    with open(log, "w") as out:   # the child keeps its own copy of the descriptor
        process = subprocess.Popen([*CELL_COMMAND, cell.to_json()], stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    return _Running(name, results, log, process, before)


def _outcome(cell: _Running, stopping: bool) -> tuple[str, str | None]:
    """(what the cell's line says, why it failed or None). `stopping`: the grid was interrupted,
    and told its cells to stop."""
    seconds, succeeded = time.perf_counter() - cell.started, cell.process.returncode == 0
    result, unreadable = None, "it wrote none"
    if cell.wrote_results():
        try:
            result = RunResult.load(cell.results)
        except MixbenchError as exc:
            unreadable = str(exc)
    status = result.status if result is not None else None
    if status == "finished" and succeeded:
        return f"finished, final loss {result.final_loss:.4f} ({seconds:.0f} s)", None
    if status == "diverged":
        return f"diverged (see {cell.results})", None
    if status == "interrupted" or (stopping and result is None and not succeeded):
        return "interrupted: its record and checkpoint are kept; rerun compare to resume it", "interrupted"
    if succeeded and result is None:
        return f"finished, but its results cannot be read ({unreadable})", unreadable
    reason = (_last_line(cell.log, "error:") or (result.error if result is not None else None)
              or _last_line(cell.log) or f"exit code {cell.process.returncode}")
    return f"failed: {reason} (log: {cell.log})", reason


def _stop(running: list[_Running]) -> None:
    """Every cell stops and saves. A Ctrl-C at the terminal reached them too; a signal to this
    process alone did not, so those still running after a grace period are sent SIGTERM (which
    a run handles as Ctrl-C)."""
    deadline = time.perf_counter() + GRACE_SECONDS
    while any(c.process.poll() is None for c in running) and time.perf_counter() < deadline:
        time.sleep(POLL_SECONDS)
    for cell in running:
        if cell.process.poll() is None:
            cell.process.send_signal(signal.SIGTERM)
    for cell in running:
        while True:
            try:
                cell.process.wait()
                break
            except KeyboardInterrupt:   # another Ctrl-C: the cells are saving; wait for them all the same
                continue


def _last_line(path: Path, prefix: str = "") -> str:
    """The last non-empty line of the log at `path` that starts with `prefix` ("" if none)."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return next((line for line in reversed(lines) if line.startswith(prefix)), "")
