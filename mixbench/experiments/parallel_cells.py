"""`mixbench compare --jobs N`: a grid's cells run N at a time, each in its own process.

Each cell is `mixbench compare-cell SPEC` (a hidden command: the same `execute` a sequential
compare calls, so a cell resumes from its checkpoint as before), with its share of the CPU's
threads (OMP_NUM_THREADS and torch.set_num_threads = cores // N) and its output in a log beside
its results (seed<N>.log). The console gets one line per finished cell. A cell that fails, for
whatever reason, is reported and the others go on. Ctrl-C (or SIGTERM) stops every cell: each
saves its record and checkpoint as an interrupted run does, and the grid resumes on the next
`compare`.
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
from mixbench.experiments.results import RunResult

# The hidden command a cell runs as (mixbench/cli/compare.py).
CELL_COMMAND = [sys.executable, "-m", "mixbench", "compare-cell"]
EXIT_DIVERGED, EXIT_USAGE, EXIT_INTERRUPTED = 3, 2, 130
POLL_SECONDS = 0.2
GRACE_SECONDS = 5.0   # after Ctrl-C, how long cells have to stop by themselves before they are told


def threads_per_job(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


@dataclass
class _Running:
    name: str
    spec: dict
    results: Path
    log: Path
    process: subprocess.Popen
    started: float = field(default_factory=time.perf_counter)


def run_cells(cells: list[tuple[str, dict, Path]], jobs: int) -> list[str]:
    """Run each (name, spec, results path) cell, `jobs` at a time; returns the failed cells, each
    with its reason. Raises KeyboardInterrupt once every cell has stopped, if interrupted."""
    threads = threads_per_job(jobs)
    queue, running, failed = list(cells), [], []
    done = 0
    try:
        while queue or running:
            while queue and len(running) < jobs:
                running.append(_start(*queue.pop(0), threads))
            time.sleep(POLL_SECONDS)
            for cell in [c for c in running if c.process.poll() is not None]:
                running.remove(cell)
                done += 1
                line, failure = _outcome(cell)
                click.echo(f"[{done}/{len(cells)}] {cell.name}: {line}", err=True)
                if failure:
                    failed.append(f"{cell.name}: {failure}")
    except KeyboardInterrupt:
        _stop(running)
        for cell in running:
            click.echo(f"  {cell.name}: {_outcome(cell)[0]}", err=True)
        raise
    return failed


def _start(name: str, spec: dict, results: Path, threads: int) -> _Running:
    log = results.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log, "w") as out:   # the child keeps its own copy of the descriptor
        process = subprocess.Popen([*CELL_COMMAND, json.dumps({**spec, "threads": threads})], stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    return _Running(name, spec, results, log, process)


def _outcome(cell: _Running) -> tuple[str, str | None]:
    """(what the cell's line says, why it failed or None)."""
    code, seconds = cell.process.returncode, time.perf_counter() - cell.started
    if code == 0:
        try:
            loss = RunResult.load(cell.results).final_loss
            return f"finished, final loss {loss:.4f} ({seconds:.0f} s)", None
        except MixbenchError as exc:
            return f"finished, but its results cannot be read ({exc})", str(exc)
    if code == EXIT_DIVERGED:
        return f"diverged (see {cell.results})", None
    if code == EXIT_INTERRUPTED or code == -signal.SIGINT:
        return "interrupted: its record and checkpoint are kept; rerun compare to resume it", "interrupted"
    reason = _last_line(cell.log) or f"exit code {code}"
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


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [""])[-1]


def cell_spec(*, algo: str, params: dict, task_name: str, config: dict, out_dir: Path, use_mlflow: bool,
              experiment: str, parent_run_id: str | None, domains, embedder_name: str,
              checkpoint_every: int | None, keep_checkpoints: int) -> dict:
    """What a cell's process needs to rebuild its RunRequest: plain JSON."""
    from mixbench.storage.atomic import json_safe

    return json_safe({"algo": algo, "params": params, "task": task_name, "config": config, "out": str(out_dir),
                      "mlflow": use_mlflow, "experiment": experiment, "parent": parent_run_id,
                      "domains": {"method": domains.method, "ks": list(domains.ks)}, "embedder": embedder_name,
                      "checkpoint_every": checkpoint_every, "keep_checkpoints": keep_checkpoints})


def request_from_spec(spec: dict):
    """The RunRequest of a cell, in its own process: resumed from its checkpoint when it can be,
    as a sequential compare does."""
    from mixbench import registry
    from mixbench.config import TrainConfig
    from mixbench.experiments.checkpoints import WHEN_POSSIBLE
    from mixbench.experiments.run import RunRequest
    from mixbench.regroup import DomainSpec

    domains = DomainSpec(spec["domains"]["method"], tuple(spec["domains"]["ks"]))
    return RunRequest(
        algo=spec["algo"], strategy=registry.strategies.get(spec["algo"])(**spec["params"]),
        task_name=spec["task"], task=registry.tasks.create(spec["task"]), config=TrainConfig.from_dict(spec["config"]),
        out_dir=Path(spec["out"]), use_mlflow=spec["mlflow"], experiment=spec["experiment"], progress=False,
        domains=domains, embedder_name=spec["embedder"],
        embedder=registry.embedders.create(spec["embedder"]) if domains.method == "regroup" else None,
        parent_run_id=spec["parent"], quiet=True, resume=WHEN_POSSIBLE,
        checkpoint_every=spec["checkpoint_every"], keep_checkpoints=spec["keep_checkpoints"])
