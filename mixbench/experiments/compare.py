"""`mixbench compare`: run a grid of (algo, domains, seed) cells through the same trainer, skip
the cells already finished (an interrupted compare resumes, the cell it stopped in from that
cell's last checkpoint), and summarise against stratified. With `jobs` > 1 the cells run that
many at a time, each in its own process (parallel_cells.py).

Every cell writes its results JSON at the fixed path <out>/<task>/<algo>/<domains>/seed<n>.json,
so the grid's state is the files on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click

from mixbench.errors import MixbenchError
from mixbench.experiments.parallel_cells import cell_spec, run_cells, threads_per_job
from mixbench.experiments.results import RunResult, result_path
from mixbench.regroup import DomainSpec
from mixbench.storage.atomic import json_safe


@dataclass(frozen=True)
class Cell:
    algo: str
    domains: DomainSpec
    seed: int


def parse_list(text: str, what: str) -> list[str]:
    """The comma-separated names in `text`, each once, in their first order."""
    items = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not items:
        raise MixbenchError(f"--{what} is empty")
    return items


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in parse_list(text, "seeds")]
    except ValueError:
        raise MixbenchError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise MixbenchError(f"--seeds has duplicates: {text!r}")
    return seeds


@dataclass(frozen=True)
class CellSettings:
    """Everything a cell's result depends on besides its code: a finished cell is reused only if
    it ran with all of these."""

    config: dict           # the TrainConfig, the cell's seed included
    params: dict           # the strategy's hyperparameters
    embedder: str | None   # for regrouped domains: the identity of the embedder that made them (its
                           # options included: a changed default re-makes the domains)
    task_version: str

    def differences(self, result: RunResult) -> list[str]:
        """The settings `result` ran with that are not these (empty: the cell can be reused)."""
        ran = _as_stored(result.config.to_dict())
        changed = [k for k, v in _as_stored(self.config).items() if ran.get(k) != v]
        params = _as_stored(self.params)
        changed += [f"{result.strategy.name}.{k}" for k in sorted(set(params) | set(result.strategy.params))
                    if result.strategy.params.get(k) != params.get(k)]
        if self.embedder is not None and result.domains.embedder != self.embedder:
            changed.append("embedder")
        if result.task.version != self.task_version:
            changed.append("task version")
        return changed


def _as_stored(values: dict) -> dict:
    """`values` as a results JSON holds them (tuples as lists, numpy as Python)."""
    return json.loads(json.dumps(json_safe(values)))


def done(path: Path, settings: CellSettings, keep: bool) -> bool:
    """A cell is done when its results JSON exists, reads as a result, says it finished (or
    diverged: the same settings would diverge again), and ran with `settings`. A done cell made
    with other settings is rerun, with a line saying why, or with `keep` refused: one comparison
    never mixes two settings."""
    try:
        result = RunResult.load(path)
    except MixbenchError:
        return False
    if not (result.finished or result.diverged):
        return False
    changed = settings.differences(result)
    if changed and keep:
        raise MixbenchError(f"{path} ran with other settings ({', '.join(changed)}); "
                            f"drop --keep-cells to rerun it, or use another --out")
    if changed:
        click.echo(f"rerunning {path}: it ran with other settings ({', '.join(changed)})", err=True)
    return not changed


def run_grid(*, task_name: str, algos: list[str], domain_specs: list[str] | None, seeds: list[int], out_dir: Path,
             overrides: dict, embedder_name: str, hyperparameters: dict | None = None, use_mlflow: bool,
             experiment: str, progress: bool, keep_cells: bool = False, checkpoint_every: int | None = None,
             keep_checkpoints: int = 1, jobs: int = 1) -> Grid:
    """Run every missing cell; returns the grid's result paths and the cells that failed (a
    strategy that crashes fails its cell; the other cells still run). `overrides` are
    training settings on top of the task's budget (the seed comes from the cell);
    `hyperparameters` {algo: {name: value}} those of the strategies. A finished cell made with
    other settings is rerun, or with `keep_cells` refused. A cell that was interrupted goes on
    from its checkpoint if it has one made with the same settings. `jobs` cells run at a time."""
    from mixbench import registry
    from mixbench.experiments.checkpoints import WHEN_POSSIBLE
    from mixbench.experiments.run import EXIT_DIVERGED, RunRequest, execute
    from mixbench.storage.atomic import check_writable

    if jobs < 1:
        raise MixbenchError(f"--jobs must be at least 1, got {jobs}")
    strategy_classes = {algo: registry.strategies.get(algo) for algo in algos}  # unknown names fail here
    hyperparameters = hyperparameters or {}
    # A bad hyperparameter fails here, before any cell runs.
    strategies = {a: cls(**hyperparameters.get(a, {})) for a, cls in strategy_classes.items()}
    for strategy in strategies.values():
        try:
            strategy.check_params()
        except ValueError as exc:
            raise MixbenchError(str(exc)) from None
    task = registry.tasks.create(task_name)
    config = task.budget.override(**overrides)   # a bad setting fails here, before any cell runs
    # Without --domains each algo runs on its own default (regroup for rnb, original otherwise).
    specs = {a: [DomainSpec.parse(d) for d in (domain_specs or [strategy_classes[a].default_domains])]
             for a in algos}
    cells = [Cell(a, d, s) for a in algos for d in specs[a] for s in seeds]
    paths = [result_path(out_dir, task_name, c.algo, c.domains.label, c.seed) for c in cells]
    check_writable(Path(out_dir) / task_name)
    version = task.info().version
    embedder_identity = registry.embedders.create(embedder_name).identity() \
        if any(c.domains.method == "regroup" for c in cells) else None

    def settings(cell: Cell) -> CellSettings:
        return CellSettings(config=config.override(seed=cell.seed).to_dict(),
                            params=strategies[cell.algo].get_params(),
                            embedder=embedder_identity if cell.domains.method == "regroup" else None,
                            task_version=version)

    todo = [(c, p) for c, p in zip(cells, paths) if not done(p, settings(c), keep_cells)]
    jobs = min(jobs, max(1, len(todo)))
    threads = threads_per_job(jobs)
    at_once = f", {jobs} at a time ({threads} thread{'s' if threads > 1 else ''} each)" if jobs > 1 else ""
    click.echo(f"compare {task_name}: {len(cells)} cells, {len(cells) - len(todo)} already finished, "
               f"{len(todo)} to run{at_once}", err=True)
    parent = _parent_tracker(task_name, algos, domain_specs or ["default"], seeds, experiment) \
        if use_mlflow and todo else None
    # The cells are tracked as the parent's children; if the parent could not start, neither would
    # they (one warning said so), and the grid runs untracked.
    cells_tracked = parent is not None and parent.active
    embedders, failed = {}, []
    try:
        if jobs > 1:
            _regroup_once(task, [c for c, _ in todo], embedder_name, progress)
            failed += run_cells([(_name(c), cell_spec(
                algo=c.algo, params=strategies[c.algo].get_params(), task_name=task_name,
                config=config.override(seed=c.seed).to_dict(), out_dir=out_dir, use_mlflow=cells_tracked,
                experiment=experiment, parent_run_id=parent.run_id if cells_tracked else None, domains=c.domains,
                embedder_name=embedder_name, checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints),
                path) for c, path in todo], jobs)
            todo = []   # all run: the loop below is the one-at-a-time path
        for i, (cell, _) in enumerate(todo, 1):
            click.echo(f"[{i}/{len(todo)}] {cell.algo} · {cell.domains.label} · seed {cell.seed}", err=True)
            strategy = strategy_classes[cell.algo](**hyperparameters.get(cell.algo, {}))
            if cell.domains.method == "regroup" and embedder_name not in embedders:
                embedders[embedder_name] = registry.embedders.create(embedder_name)
            try:
                code = execute(RunRequest(
                    algo=cell.algo, strategy=strategy, task_name=task_name, task=task,
                    config=config.override(seed=cell.seed), out_dir=out_dir, use_mlflow=cells_tracked,
                    experiment=experiment, progress=progress, domains=cell.domains,
                    embedder_name=embedder_name, embedder=embedders.get(embedder_name),
                    parent_run_id=parent.run_id if cells_tracked else None, quiet=True, resume=WHEN_POSSIBLE,
                    checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints))
            except MixbenchError:
                raise
            except Exception as exc:   # a bug in the strategy (or below): this cell fails, the rest run
                failed.append(f"{cell.algo} · {cell.domains.label} · seed {cell.seed}: {type(exc).__name__}: {exc}")
                click.echo(f"  failed: {failed[-1]}; going on", err=True)
                continue
            if code == EXIT_DIVERGED:   # recorded as diverged; the other cells still run
                click.echo(f"  {cell.algo} · seed {cell.seed} diverged (see its results file); going on", err=True)
            elif code != 0:
                raise KeyboardInterrupt
        if parent is not None:
            _log_summary(parent, paths)
            parent.finish("FINISHED")
    except KeyboardInterrupt:
        if parent is not None:
            parent.finish("KILLED")
        click.echo("compare interrupted: finished cells are kept; rerun the same command to finish the rest",
                   err=True)
        raise SystemExit(130) from None
    except BaseException:   # whatever ends the grid, its MLflow run is not left RUNNING
        if parent is not None:
            parent.finish("FAILED")
        raise
    return Grid(paths=paths, failed=failed)


def _name(cell: Cell) -> str:
    return f"{cell.algo} · {cell.domains.label} · seed {cell.seed}"


def _regroup_once(task, cells: list[Cell], embedder_name: str, progress: bool) -> None:
    """Make each regrouping the cells need once, here, before they start: side by side they
    would all embed the task at once; now they read it from the cache."""
    from mixbench import registry
    from mixbench.regroup import regroup

    specs = list(dict.fromkeys(c.domains for c in cells if c.domains.method == "regroup"))
    if not specs:
        return
    data, info, embedder = task.load(), task.info(), registry.embedders.create(embedder_name)
    for spec in specs:
        regroup(data, info, embedder, list(spec.ks), seed=0, progress=progress)


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


def _parent_tracker(task_name, algos, domain_specs, seeds, experiment):
    from mixbench.experiments.tracking import MlflowTracker

    tracker = MlflowTracker(experiment=experiment, run_name=f"compare-{task_name}",
                            tags={"mixbench.kind": "compare", "mixbench.task": task_name})
    tracker.log_params({"task": task_name, "algos": ",".join(algos), "domains": ",".join(domain_specs),
                        "seeds": ",".join(map(str, seeds))})
    return tracker
