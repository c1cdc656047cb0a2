"""`mixbench compare`: run a grid of (algo, domains, seed) cells through the same trainer, skip
the cells already finished (an interrupted compare resumes), and summarise against stratified.

Every cell writes its results JSON at the fixed path <out>/<task>/<algo>/<domains>/seed<n>.json,
so the grid's state is the files on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click

from mixbench.errors import MixbenchError
from mixbench.experiments.results import RunResult, result_path
from mixbench.regroup import DomainSpec
from mixbench.storage.atomic import json_safe


@dataclass(frozen=True)
class Cell:
    algo: str
    domains: DomainSpec
    seed: int


def parse_list(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
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


def finished(path: Path, params: dict | None = None) -> bool:
    """A cell is done when its results JSON exists, reads as a result, and says it finished (or
    diverged: the same settings would diverge again). With `params`, a done cell that ran with
    other hyperparameters is an error: resuming must not mix two settings in one table."""
    try:
        result = RunResult.load(path)
    except MixbenchError:
        return False
    params = None if params is None else json.loads(json.dumps(json_safe(params)))  # as stored
    done = result.finished or result.diverged
    if done and params is not None and result.strategy.params != params:
        changed = sorted(k for k in params if result.strategy.params.get(k) != params[k])
        raise MixbenchError(f"{path} was run with other {result.strategy.name} hyperparameters "
                            f"({', '.join(changed) or 'a different set'}); use another --out or delete it")
    return done


def run_grid(*, task_name: str, algos: list[str], domain_specs: list[str] | None, seeds: list[int], out_dir: Path,
             overrides: dict, embedder_name: str, hyperparameters: dict | None = None, use_mlflow: bool,
             experiment: str, progress: bool) -> list[Path]:
    """Run every missing cell; returns the result paths of the whole grid. `overrides` are
    training settings on top of the task's budget (the seed comes from the cell);
    `hyperparameters` {algo: {name: value}} those of the strategies."""
    from mixbench import registry
    from mixbench.experiments.run import EXIT_DIVERGED, RunRequest, execute
    from mixbench.storage.atomic import check_writable

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
    todo = [(c, p) for c, p in zip(cells, paths) if not finished(p, strategies[c.algo].get_params())]
    click.echo(f"compare {task_name}: {len(cells)} cells, {len(cells) - len(todo)} already finished, "
               f"{len(todo)} to run", err=True)
    parent = _parent_tracker(task_name, algos, domain_specs or ["default"], seeds, experiment) \
        if use_mlflow and todo else None
    embedders = {}
    try:
        for i, (cell, _) in enumerate(todo, 1):
            click.echo(f"[{i}/{len(todo)}] {cell.algo} · {cell.domains.label} · seed {cell.seed}", err=True)
            strategy = strategy_classes[cell.algo](**hyperparameters.get(cell.algo, {}))
            if cell.domains.method == "regroup" and embedder_name not in embedders:
                embedders[embedder_name] = registry.embedders.create(embedder_name)
            code = execute(RunRequest(
                algo=cell.algo, strategy=strategy, task_name=task_name, task=task,
                config=config.override(seed=cell.seed), out_dir=out_dir, use_mlflow=use_mlflow,
                experiment=experiment, progress=progress, domains=cell.domains,
                embedder_name=embedder_name, embedder=embedders.get(embedder_name),
                parent_run_id=parent.run_id if parent else None, quiet=True))
            if code == EXIT_DIVERGED:   # recorded as diverged; the other cells still run
                click.echo(f"  {cell.algo} · seed {cell.seed} diverged (see its results file); going on", err=True)
            elif code != 0:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        if parent is not None:
            parent.finish("KILLED")
        click.echo("compare interrupted: finished cells are kept; rerun the same command to finish the rest",
                   err=True)
        raise SystemExit(130) from None
    if parent is not None:
        from mixbench.experiments.plots import plot_curves
        from mixbench.experiments.summary import summarize

        results = [RunResult.load(p) for p in paths]
        parent.client.log_table(parent.run_id, data=summarize(results), artifact_file="summary.json")
        parent.client.log_figure(parent.run_id, plot_curves(results), "eval_loss.png")
        parent.finish("FINISHED")
    return paths


def _parent_tracker(task_name, algos, domain_specs, seeds, experiment):
    from mixbench.experiments.tracking import MlflowTracker

    tracker = MlflowTracker(experiment=experiment, run_name=f"compare-{task_name}",
                            tags={"mixbench.kind": "compare", "mixbench.task": task_name})
    tracker.log_params({"task": task_name, "algos": ",".join(algos), "domains": ",".join(domain_specs),
                        "seeds": ",".join(map(str, seeds))})
    return tracker
