"""`mixbench compare`: run a grid of (algo, domains, seed) cells through the same trainer, skip
the cells already finished (an interrupted compare resumes, the cell it stopped in from that
cell's last checkpoint), and summarise against stratified. With `jobs` > 1 the cells run that
many at a time, each in its own process (parallel_cells.py).

Every cell writes its results JSON at the fixed path <out>/<task>/<algo>/<domains>/seed<n>.json,
so the grid's state is the files on disk.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import click

from mixbench.errors import MixbenchError
from mixbench.experiments.grid_clock import GridClock
from mixbench.experiments.outcomes import GridInterrupted, RunDiverged
from mixbench.experiments.parallel_cells import run_cells, threads_per_job
from mixbench.experiments.results import RunResult
from mixbench.experiments.settings import GridSettings, RunSettings
from mixbench.storage.atomic import json_safe
from mixbench.storage.locks import FileLock


@dataclass(frozen=True)
class CellSettings:
    """Everything a cell's result depends on besides its code: a finished cell is reused only if
    it ran with all of these."""

    config: dict           # the TrainConfig, the cell's seed included
    params: dict           # the strategy's hyperparameters
    embedder: str | None   # for regrouped domains: the identity of the embedder that made them (its
                           # options included: a changed default re-makes the domains)
    task_version: str
    k_choice: dict | None = None   # for regrouped domains: how Regroup picked k (KChoice.to_dict())

    @classmethod
    def of(cls, cell: RunSettings, task_version: str, embedder_identity: str | None) -> CellSettings:
        regrouped = cell.domains.method == "regroup"
        return cls(config=cell.config.to_dict(), params=dict(cell.params), task_version=task_version,
                   embedder=embedder_identity if regrouped else None,
                   k_choice=cell.domains.choice.to_dict() if regrouped else None)

    def differences(self, result: RunResult) -> list[str]:
        """The settings `result` ran with that are not these (empty: the cell can be reused)."""
        ran = _as_stored(result.config.to_dict())
        changed = [k for k, v in _as_stored(self.config).items() if ran.get(k) != v]
        params = _as_stored(self.params)
        changed += [f"{result.strategy.name}.{k}" for k in sorted(set(params) | set(result.strategy.params))
                    if result.strategy.params.get(k) != params.get(k)]
        if self.embedder is not None and result.domains.embedder != self.embedder:
            changed.append("embedder")
        # Regrouped domains are clustered with the run's own seed (a cell made before that was
        # clustered with seed 0 whatever its seed).
        if self.embedder is not None and result.domains.clustering_seed != self.config["seed"]:
            changed.append("clustering seed")
        if self.k_choice is not None and self.k_choice != {"rule": result.domains.k_rule,
                                                           "min_cluster_size": result.domains.min_cluster_size,
                                                           "collapse": result.domains.collapse}:
            changed.append("k rule")
        if result.task.version != self.task_version:
            changed.append("task version")
        return changed


def _as_stored(values: dict) -> dict:
    """`values` as a results JSON holds them (tuples as lists, numpy as Python)."""
    return json.loads(json.dumps(json_safe(values)))


def done(path: Path, settings: CellSettings, keep: bool, quiet: bool = False) -> bool:
    """A cell is done when its results JSON exists, reads as a result, says it finished (or
    diverged: the same settings would diverge again), and ran with `settings`. A done cell made
    with other settings is rerun, with a line saying why, or with `keep` refused: one comparison
    never mixes two settings. `quiet`: a second look, after the first said all that (no lines,
    no refusal)."""
    if not path.exists():
        return False
    try:
        result = RunResult.load(path)
    except MixbenchError as exc:   # damaged, or not a result: run again, and say so
        if not quiet:
            click.echo(f"rerunning a cell whose results cannot be used: {exc}", err=True)
        return False
    if not (result.finished or result.diverged):
        return False
    changed = settings.differences(result)
    if changed and keep and not quiet:
        raise MixbenchError(f"{path} ran with other settings ({', '.join(changed)}); "
                            f"drop --keep-cells to rerun it, or use another --out")
    if changed and not quiet:
        click.echo(f"rerunning {path}: it ran with other settings ({', '.join(changed)})", err=True)
    return not changed


def run_grid(settings: GridSettings) -> Grid:
    """Run every missing cell; returns the grid's result paths and the cells that failed (a
    strategy that crashes fails its cell; a cell that diverges is recorded so; the other cells
    still run). A finished cell made with other settings is rerun, or with `keep_cells` refused.
    A cell that was interrupted goes on from its checkpoint if it has one made with the same
    settings. `jobs` cells run at a time. Interrupted, it raises GridInterrupted carrying the
    grid so far; a bad input is a MixbenchError, raised before any cell runs."""
    from mixbench import registry
    from mixbench.storage.atomic import check_writable

    cells = settings.cells()   # every name, hyperparameter and training setting checked here
    paths = [cell.result_path for cell in cells]
    check_writable(settings.out_dir / settings.task)
    version = cells[0].create_task().info().version   # a cell's task: it refuses what no cell could run
    embedder_identity = registry.embedders.create(settings.embedder).identity() \
        if any(c.domains.method == "regroup" for c in cells) else None
    reuse = {c.result_path: CellSettings.of(c, version, embedder_identity) for c in cells}
    todo = [c for c in cells if not done(c.result_path, reuse[c.result_path], settings.keep_cells)]
    jobs = min(settings.jobs, max(1, len(todo)))
    threads = threads_per_job(jobs)
    at_once = f", {jobs} at a time ({threads} thread{'s' if threads > 1 else ''} each)" if jobs > 1 else ""
    click.echo(f"compare {settings.task}: {len(cells)} cells, {len(cells) - len(todo)} already finished, "
               f"{len(todo)} to run{at_once}; results under {settings.out_dir / settings.task}", err=True)
    parent = _parent_tracker(settings) if settings.tracking.enabled and todo else None
    # The cells are tracked as the parent's children; if the parent could not start, neither would
    # they (one warning said so), and the grid runs untracked.
    tracked = parent is not None and parent.active
    tracking = dataclasses.replace(settings.tracking, enabled=tracked, parent_run_id=parent.run_id if tracked else None)
    todo = [dataclasses.replace(c, tracking=tracking) for c in todo]
    failed = []
    try:
        if jobs > 1:
            _regroup_once(todo, settings.progress)
            failed += run_cells([dataclasses.replace(c, progress=False) for c in todo], [_name(c) for c in todo], jobs,
                                [dataclasses.asdict(reuse[c.result_path]) for c in todo], settings.keep_cells)
            todo = []   # all run: the loops below are the one-at-a-time path
        busy = []   # cells another process is running: come back to them once the rest are done
        clock = GridClock(len(todo))
        for i, cell in enumerate(todo, 1):
            left = clock.left()
            click.echo(f"[{i}/{len(todo)}] {_name(cell)}{f' ({left})' if left else ''}", err=True)
            started = time.perf_counter()
            if _run_one(cell, reuse[cell.result_path], settings.keep_cells, failed, wait=False):
                clock.finished(time.perf_counter() - started)
            else:
                click.echo("  another process is running this cell: back to it at the end", err=True)
                busy.append(cell)
        for cell in busy:
            click.echo(f"waiting for {_name(cell)}: another process is running it", err=True)
            _run_one(cell, reuse[cell.result_path], settings.keep_cells, failed, wait=True)
        if parent is not None:
            _log_summary(parent, paths)
            parent.finish("FINISHED")
    except KeyboardInterrupt:
        if parent is not None:
            parent.finish("KILLED")
        click.echo("compare interrupted: finished cells are kept; rerun the same command to finish the rest",
                   err=True)
        raise GridInterrupted(Grid(paths=paths, failed=failed)) from None
    except BaseException:   # whatever ends the grid, its MLflow run is not left RUNNING
        if parent is not None:
            parent.finish("FAILED")
        raise
    return Grid(paths=paths, failed=failed)


def run_cell(cell: RunSettings, reuse: CellSettings, keep: bool, *, wait: bool) -> bool:
    """Run `cell` holding its lock (seed<N>.lock beside its results), so that no two processes
    (two compares on one --out, a compare and the orphaned cells of an earlier one) ever train
    it at once. If another process holds it: False at once, or with `wait` wait for it. Once the
    lock is held, a cell another process finished meanwhile is kept, not run again. True once
    the cell is done with. What `run` raises is raised."""
    from mixbench.experiments.run import run

    lock = FileLock(cell.result_path.with_suffix(".lock"))
    if not lock.acquire(wait=False):
        if not wait:
            return False
        lock.acquire(wait=True)
    try:
        if done(cell.result_path, reuse, keep, quiet=True):
            click.echo(f"  {_name(cell)}: finished by another process meanwhile; kept", err=True)
            return True
        run(cell)
        return True
    finally:
        lock.release()


def _run_one(cell: RunSettings, reuse: CellSettings, keep: bool, failed: list[str], *, wait: bool) -> bool:
    """One cell of the one-at-a-time path: a cell that diverges or crashes is recorded and the
    grid goes on (a crash in `failed`); bad input is raised. False: another process runs it."""
    try:
        return run_cell(cell, reuse, keep, wait=wait)
    except RunDiverged:   # recorded as diverged; the other cells still run
        click.echo(f"  {cell.algo} · seed {cell.config.seed} diverged (see its results file); going on", err=True)
    except MixbenchError:
        raise
    except Exception as exc:   # a bug in the strategy (or below): this cell fails, the rest run
        failed.append(f"{_name(cell)}: {type(exc).__name__}: {exc}")
        click.echo(f"  failed: {failed[-1]}; going on", err=True)
    return True


def _name(cell: RunSettings) -> str:
    return f"{cell.algo} · {cell.domains.label} · seed {cell.config.seed}"


def _regroup_once(cells: list[RunSettings], progress: bool) -> None:
    """Make each regrouping the cells need once, here, before they start: side by side they
    would all embed the task at once; now they read it from the cache. Each seed has its own
    clustering (a run's clustering follows its seed)."""
    from mixbench.regroup import regroup

    regrouped = [c for c in cells if c.domains.method == "regroup"]
    if not regrouped:
        return
    task, embedder = regrouped[0].create_task(), regrouped[0].create_embedder()   # one task and embedder a grid
    data, info = task.load(), task.info()
    for spec, seed in dict.fromkeys((c.domains, c.config.seed) for c in regrouped):
        regroup(data, info, embedder, list(spec.ks), seed=seed, choice=spec.choice, progress=progress)


@dataclass(frozen=True)
class Grid:
    paths: list[Path]      # every cell's results file (a cell that failed early may have none)
    failed: list[str]      # the cells that failed this time, each with its error

    def results(self) -> list[RunResult]:
        """The results of every cell that has a readable results file."""
        return load_cells(self.paths)


def load_cells(paths: list[Path]) -> list[RunResult]:
    out = []
    for path in paths:
        try:
            out.append(RunResult.load(path))
        except MixbenchError:   # no file: the cell failed before its first evaluation
            continue
    return out


def _log_summary(parent, paths: list[Path]) -> None:
    from mixbench.experiments.plots import plot_curves
    from mixbench.experiments.summary import summarize

    results = load_cells(paths)
    parent.log_table(summarize(results), "summary.json")
    parent.log_figure(plot_curves(results), "eval_loss.png")


def _parent_tracker(settings: GridSettings):
    from mixbench.experiments.tracking import MlflowTracker

    tracker = MlflowTracker(experiment=settings.tracking.experiment, tracking_uri=settings.tracking.uri,
                            run_name=f"compare-{settings.task}",
                            tags={"mixbench.kind": "compare", "mixbench.task": settings.task})
    tracker.log_params({"task": settings.task, "algos": ",".join(settings.algos),
                        "domains": ",".join(settings.domains or ["default"]),
                        "seeds": ",".join(map(str, settings.seeds))})
    return tracker
