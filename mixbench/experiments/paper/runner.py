"""Runs the protocol: every row of every task through compare's grid (`run_grid`), so each cell is a
results JSON at a fixed path, reused when it finished with the same settings and resumed from its
checkpoint when it was interrupted. Rows that would share a results path (R&B with either Gram, the
fixed k of the sweep) go to their own folder, OUT/<grid>/<task>/<algo>/<domains>/seed<N>.json.

OUT/paper.json records what the report needs to be rebuilt: the command, the settings, each task's
plan and budget, the package versions and the machine. `--rows` runs some rows only (more seeds for
the cheap rows, say); the earlier commands under the same OUT and settings are kept in its history,
and the report reads every seed any of them ran.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import click

from mixbench.errors import MixbenchError
from mixbench.experiments.outcomes import GridInterrupted, PaperInterrupted
from mixbench.experiments.paper import protocol
from mixbench.experiments.paper.protocol import Row, TaskMap
from mixbench.experiments.results import RunResult, now, result_path
from mixbench.experiments.settings import GridSettings, TrackingSettings, check_jobs
from mixbench.regroup import DomainSpec
from mixbench.storage.atomic import check_writable, write_json

MANIFEST = "paper.json"
QUICK_BUDGET = {"steps": 20, "steps_per_round": 5, "eval_per_domain": 4}


@dataclass(frozen=True)
class PaperSettings:
    """One invocation of the protocol: what it runs (recorded in paper.json) and where and how."""

    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    overrides: dict              # training settings over every task's own budget (the same for all)
    params: dict                 # {algo: {name: value}}: the user's --param, over the protocol's defaults
    embedder: str
    ks: tuple[int, ...]
    quick: bool = False
    rows: tuple[str, ...] | None = None   # row keys or report sections to run (None: every row)
    # Where and how it runs: no part of the protocol, so not in paper.json's settings.
    out_dir: Path = Path("runs")
    command: str = "mixbench paper"       # as typed, for the report
    tracking: TrackingSettings = TrackingSettings(experiment="mixbench-paper")
    progress: bool = True
    checkpoint_every: int | None = None
    keep_checkpoints: int = 1
    jobs: int = 1                         # cells of a row group at a time, as compare --jobs

    def __post_init__(self):
        check_jobs(self.jobs)   # before anything is read or written
        object.__setattr__(self, "out_dir", Path(self.out_dir))

    def to_manifest(self) -> dict:
        """What paper.json records of these settings: what was run."""
        return {"tasks": list(self.tasks), "seeds": list(self.seeds), "overrides": self.overrides,
                "params": self.params, "embedder": self.embedder, "ks": list(self.ks), "quick": self.quick,
                "rows": list(self.rows) if self.rows is not None else None}

    def grid(self, task: str, folder: str, rows: list[Row], domains: str, overrides: dict) -> GridSettings:
        """The grid of `rows` (one strategy each) on `task`, in OUT/`folder`."""
        return GridSettings(task=task, algos=tuple(row.algo for row in rows), seeds=self.seeds, domains=(domains,),
                            overrides=overrides, params={row.algo: hyperparameters(row, self.params) for row in rows},
                            embedder=self.embedder, out_dir=self.out_dir / folder, tracking=self.tracking,
                            progress=self.progress, checkpoint_every=self.checkpoint_every,
                            keep_checkpoints=self.keep_checkpoints, jobs=self.jobs)


# The settings that make two invocations one protocol: the cells of one can be reported beside the other's.
_PROTOCOL_SETTINGS = ("overrides", "params", "embedder", "ks", "quick")


@dataclass(frozen=True)
class TaskPlan:
    task: TaskMap
    ood: bool                    # eval domains unseen in training: every row on regrouped domains
    rows: list[Row]
    baseline: str                # the key of the row the others are compared with

    @classmethod
    def of(cls, task: TaskMap, ood: bool, ks: tuple[int, ...]) -> TaskPlan:
        return cls(task, ood, protocol.rows_for(task, ood=ood, ks=ks), protocol.baseline_key(task, ood=ood))

    def to_dict(self) -> dict:
        return {"task": self.task.task, "paper_dataset": self.task.paper_dataset, "modality": self.task.modality,
                "ood": self.ood}

    @classmethod
    def from_dict(cls, values: dict, ks: tuple[int, ...]) -> TaskPlan:
        return cls.of(TaskMap(values["task"], values["paper_dataset"], values["modality"]), values["ood"], ks)


def default_tasks() -> tuple[str, ...]:
    """The stand-ins whose data is here: the text ones, and the first image-text one."""
    ready = [name for name in protocol.DEFAULT_TEXT_TASKS + protocol.DEFAULT_IMAGE_TASKS if _status(name) == "ready"]
    image = [name for name in ready if name in protocol.DEFAULT_IMAGE_TASKS][:1]
    return tuple(name for name in ready if name in protocol.DEFAULT_TEXT_TASKS) + tuple(image)


def _status(name: str) -> str:
    from mixbench import registry

    try:
        return registry.tasks.create(name).status()
    except Exception as exc:   # noqa: BLE001 - plugin code: a task that cannot say counts as not ready
        return f"unavailable ({type(exc).__name__}: {exc})"


def plan_tasks(settings: PaperSettings) -> list[TaskPlan]:
    """Each task's plan; an unknown task, or one whose data is not here, is refused before anything runs."""
    from mixbench import registry

    plans = []
    for name in settings.tasks:
        task = registry.tasks.create(name)   # an unknown name: one line, with "did you mean"
        status = task.status()
        if status != "ready":
            raise MixbenchError(f"task {name} is not ready: {status}")
        mapped = protocol.TASKS.get(name) or TaskMap(name, None, task.info().modality)
        plans.append(TaskPlan.of(mapped, bool(getattr(task, "eval_domains_unseen", False)), settings.ks))
    return plans


@dataclass
class PaperRun:
    plans: list[TaskPlan]
    failed: list[str] = field(default_factory=list)   # cells that failed this time, with their errors


def run_paper(settings: PaperSettings) -> PaperRun:
    """Runs every missing cell of every task's rows, `jobs` cells at a time; returns the plans and
    the cells that failed. Interrupted, it raises PaperInterrupted carrying the run so far."""
    from mixbench import registry
    from mixbench.experiments.compare import run_grid

    out_dir = settings.out_dir
    check_writable(out_dir, out_dir / MANIFEST)
    plans = plan_tasks(settings)
    _check_rows_known(settings.rows, plans)
    selected = {p.task.task: select_rows(p, settings.rows) for p in plans}
    earlier = _earlier_manifest(out_dir)
    _check_same_protocol(settings, earlier)
    budgets = {p.task.task: registry.tasks.create(p.task.task).budget.override(**settings.overrides) for p in plans}
    manifest = _with_history(_manifest(settings, plans, budgets), earlier)
    write_json(out_dir / MANIFEST, manifest)
    run = PaperRun(plans)
    for plan in plans:
        task, config = plan.task.task, budgets[plan.task.task]
        for (folder, domains, rounds, _), rows in _groups(selected[task]).items():
            overrides = dict(settings.overrides)
            if rounds is not None:   # a fixed number of mixture updates over the run's steps
                overrides["steps_per_round"] = max(1, config.steps // rounds)
            click.echo(f"paper {task}: {', '.join(row.key for row in rows)} ({domains}) in {folder}/", err=True)
            try:
                grid = run_grid(settings.grid(task, folder, rows, domains, overrides))
            except GridInterrupted as stopped:
                run.failed += [f"{task}: {line}" for line in stopped.result.failed]
                raise PaperInterrupted(run) from None
            run.failed += [f"{task}: {line}" for line in grid.failed]
    write_json(out_dir / MANIFEST, {**manifest, "finished_at": now(), "failed_cells": run.failed})
    return run


def row_names(plans: list[TaskPlan]) -> list[str]:
    """What --rows accepts for these tasks: every row key, then the report sections."""
    keys = dict.fromkeys(row.key for plan in plans for row in plan.rows)
    return list(keys) + list(dict.fromkeys(row.section for plan in plans for row in plan.rows))


def select_rows(plan: TaskPlan, wanted: tuple[str, ...] | None) -> list[Row]:
    """The plan's rows named in `wanted` by key or by section, with the baseline every other row is
    compared with (a finished baseline cell is reused, so asking for it costs nothing)."""
    if wanted is None:
        return plan.rows
    return [row for row in plan.rows if row.key in wanted or row.section in wanted or row.key == plan.baseline]


def _check_rows_known(wanted: tuple[str, ...] | None, plans: list[TaskPlan]) -> None:
    if wanted is None:
        return
    names = row_names(plans)
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise MixbenchError(f"--rows: no row or section {', '.join(unknown)} on {', '.join(p.task.task for p in plans)}"
                            f" (rows and sections: {', '.join(names)})")


def _earlier_manifest(out_dir: Path) -> dict | None:
    """The manifest an earlier `mixbench paper` left under OUT, if it can be read."""
    try:
        return read_manifest(out_dir)
    except MixbenchError:
        return None


def _check_same_protocol(settings: PaperSettings, earlier: dict | None) -> None:
    """Some rows under other settings than the earlier run's would leave the other rows' cells from
    the earlier protocol beside them, and one report would compare the two: refused. Every row
    under other settings reruns them all, as compare does, and starts a new history."""
    if settings.rows is None or earlier is None:
        return
    differ = _other_settings(settings.to_manifest(), earlier)
    if differ:
        raise MixbenchError(f"--rows with other {', '.join(differ)} than the run recorded in "
                            f"{MANIFEST} would report two protocols side by side: use another --out, or "
                            "leave --rows out to rerun every row")


def _with_history(manifest: dict, earlier: dict | None) -> dict:
    """`manifest` with the earlier invocations under the same OUT and protocol settings, and the
    tasks they ran that this one does not (so the report keeps them)."""
    if earlier is None or _other_settings(manifest["settings"], earlier):
        return {**manifest, "history": []}
    old = earlier.get("settings", {})
    entry = {k: earlier.get(k) for k in ("command", "started_at", "finished_at")}
    entry.update(seeds=old.get("seeds", []), tasks=old.get("tasks", []), rows=old.get("rows"))
    # The same command again (a resumed or repeated run) is one command, not two.
    history = earlier.get("history", []) + ([] if entry["command"] == manifest["command"] else [entry])
    names = {t["task"] for t in manifest["tasks"]}
    kept = [t for t in earlier.get("tasks", []) if t["task"] not in names]
    return {**manifest, "history": history,
            "tasks": manifest["tasks"] + kept,
            "budgets": {**{t["task"]: earlier["budgets"][t["task"]] for t in kept}, **manifest["budgets"]}}


def _other_settings(settings: dict, earlier: dict) -> list[str]:
    """The protocol settings in which `settings` differ from the earlier run's."""
    old = earlier.get("settings", {})
    return [name for name in _PROTOCOL_SETTINGS if settings.get(name) != old.get(name)]


def report_seeds(manifest: dict) -> tuple[int, ...]:
    """Every seed this run or an earlier one in its history ran, in order."""
    seeds = [*manifest["settings"]["seeds"], *(s for entry in manifest.get("history", []) for s in entry["seeds"])]
    return tuple(sorted(set(seeds)))


def hyperparameters(row: Row, user: dict) -> dict:
    """The protocol's defaults for the row's strategy, under the user's --param, under the row's own."""
    return {**protocol.STRATEGY_DEFAULTS.get(row.algo, {}), **user.get(row.algo, {}), **dict(row.params)}


def _groups(rows: list[Row]) -> dict[tuple, list[Row]]:
    """Rows one run_grid call can run together: the same folder, domains and round length (each
    strategy appears once per folder by construction). The costly baselines (Skill-It, Aioli,
    DGA: m extra runs, evaluations or gradients) come last, so an interrupted or still-running
    protocol already has stratified, R&B and the sweep to report."""
    groups: dict[tuple, list[Row]] = {}
    for row in sorted(rows, key=lambda r: r.algo in protocol.ADAPTIVE_BASELINES):   # stable: row order otherwise
        groups.setdefault((row.grid, row.domains, row.rounds, row.algo in protocol.ADAPTIVE_BASELINES),
                          []).append(row)
    return groups


def cell_path(out_dir: Path, task: str, row: Row, seed: int) -> Path:
    return result_path(Path(out_dir) / row.grid, task, row.algo, DomainSpec.parse(row.domains).label, seed)


def load_rows(out_dir: Path, plan: TaskPlan, seeds: tuple[int, ...]) -> dict[str, list[RunResult]]:
    """Each row's results over `seeds` (a cell without a readable results file is missing)."""
    from mixbench.experiments.compare import load_cells

    return {row.key: load_cells([cell_path(out_dir, plan.task.task, row, s) for s in seeds]) for row in plan.rows}


def read_manifest(out_dir: Path) -> dict:
    path = Path(out_dir) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MixbenchError(f"no {MANIFEST} in {out_dir}: run `mixbench paper --out {out_dir}` first") from None
    except (OSError, ValueError) as exc:
        raise MixbenchError(f"cannot read {path}: {exc}") from None


def _manifest(settings: PaperSettings, plans: list[TaskPlan], budgets: dict) -> dict:
    from mixbench import registry

    return {
        "command": settings.command,
        "started_at": now(),
        "settings": settings.to_manifest(),
        # The embedder with its options (minilm's windows), as the regrouped cells record it.
        "embedder_identity": registry.embedders.create(settings.embedder).identity(),
        "protocol": {"k_sweep": list(settings.ks), "skillit_graph_fraction": protocol.SKILLIT_GRAPH_FRACTION,
                     "aioli_rounds": protocol.AIOLI_ROUNDS, "alpha": protocol.ALPHA, "power": protocol.POWER,
                     "strategy_params": {row.key: hyperparameters(row, settings.params)
                                         for p in plans for row in p.rows if row.section != protocol.FIG2}},
        "tasks": [p.to_dict() for p in plans],
        "budgets": {name: {k: v for k, v in cfg.to_dict().items() if k != "seed"} for name, cfg in budgets.items()},
        "versions": versions(),
        "machine": machine(),
    }


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("mixbench", "torch", "numpy", "scipy", "scikit-learn", "pandas", "matplotlib",
                 "sentence-transformers", "transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    from mixbench.experiments.results import git_hash

    out["git"] = git_hash()
    return out


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
            "python_executable": sys.executable}
