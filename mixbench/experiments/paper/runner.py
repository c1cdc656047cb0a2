"""Runs the protocol: every row of every task through compare's grid (`run_grid`), so each cell is a
results JSON at a fixed path, reused when it finished with the same settings and resumed from its
checkpoint when it was interrupted. Rows that would share a results path (R&B with either Gram, the
fixed k of the sweep) go to their own folder, OUT/<grid>/<task>/<algo>/<domains>/seed<N>.json.

Each row runs its pre-registered seeds (registration.py) unless --seeds names others; seeds beyond
a row's registered ones are exploratory, and the command that ran them is counted as a look.

OUT/paper.json records what the report needs to be rebuilt: each task's registration (with its
digest), plan and budget; every command run under OUT with the same protocol, with its git state
and whether it ran exploratory seeds; the package versions (the data's and the embedder's
included), the machine; and, once a task's registered cells have all ended, its confirmatory
verdicts as first looked at (they never change after). Paths and commands are written relative
to OUT or the repository.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import click

from mixbench.data.datafile import DataFile
from mixbench.errors import MixbenchError
from mixbench.experiments.outcomes import GridInterrupted, PaperInterrupted
from mixbench.experiments.paper import protocol
from mixbench.experiments.paper.protocol import Row, TaskMap
from mixbench.experiments.paper.registration import RegisteredRow, Registration, registered_seeds
from mixbench.experiments.provenance import git_state, machine, versions
from mixbench.experiments.results import RunResult, now, result_path
from mixbench.experiments.settings import GridSettings, TrackingSettings, check_jobs
from mixbench.experiments.task_spec import TaskSpec
from mixbench.regroup import DomainSpec
from mixbench.storage.atomic import check_writable
from mixbench.storage.digest import read_json_with_digest, write_json_with_digest

MANIFEST = "paper.json"
QUICK_BUDGET = {"steps": 20, "steps_per_round": 5, "eval_per_domain": 4}


@dataclass(frozen=True)
class PaperSettings:
    """One invocation of the protocol: what it runs (recorded in paper.json) and where and how."""

    tasks: tuple[str, ...]
    seeds: tuple[int, ...] | None   # None: each row its registered seeds; else these for every row run
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
    task_files: Mapping[str, DataFile] = field(default_factory=dict)   # the data files among `tasks`, by name

    def __post_init__(self):
        check_jobs(self.jobs)   # before anything is read or written
        object.__setattr__(self, "out_dir", Path(self.out_dir))

    def task_spec(self, name: str) -> TaskSpec:
        """A task of `tasks`: a registered one, or a data file given as --task PATH."""
        return TaskSpec(name, self.task_files.get(name))

    def to_manifest(self) -> dict:
        """What paper.json records of these settings: what was run."""
        return {"tasks": list(self.tasks), "seeds": None if self.seeds is None else list(self.seeds),
                "overrides": self.overrides,
                "params": self.params, "embedder": self.embedder, "ks": list(self.ks), "quick": self.quick,
                "rows": list(self.rows) if self.rows is not None else None,
                **({"task_files": {n: f.to_dict() for n, f in self.task_files.items()}} if self.task_files else {})}

    def seeds_of(self, row: Row) -> tuple[int, ...]:
        """The seeds this invocation runs `row` at: --seeds, else its registered ones."""
        return self.seeds if self.seeds is not None else registered_seeds(row, self.quick)

    def grid(self, plan: TaskPlan, folder: str, rows: list[Row], domains: str, overrides: dict) -> GridSettings:
        """The grid of `rows` (one strategy each, the same seeds) on the plan's task, in OUT/`folder`."""
        return GridSettings(task=plan.task.task, task_file=self.task_files.get(plan.task.task),
                            algos=tuple(row.algo for row in rows), seeds=self.seeds_of(rows[0]),
                            domains=(domains,), overrides=overrides,
                            params={row.algo: plan.hyperparameters(row, self.params) for row in rows},
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
    original_domains: int = 1    # m of the task's own labels (sizes Skill-It's graph runs and Aioli's rounds)

    @classmethod
    def of(cls, task: TaskMap, ood: bool, ks: tuple[int, ...], original_domains: int = 1) -> TaskPlan:
        return cls(task, ood, protocol.rows_for(task, ood=ood, ks=ks), protocol.baseline_key(task, ood=ood),
                   original_domains)

    def to_dict(self) -> dict:
        return {"task": self.task.task, "paper_dataset": self.task.paper_dataset, "modality": self.task.modality,
                "ood": self.ood, "original_domains": self.original_domains}

    @classmethod
    def from_dict(cls, values: dict, ks: tuple[int, ...]) -> TaskPlan:
        return cls.of(TaskMap(values["task"], values["paper_dataset"], values["modality"]), values["ood"], ks,
                      values.get("original_domains", 1))

    def most_domains(self, row: Row) -> int:
        """The most domains `row` can train on: the task's own, or the top of Regroup's range."""
        spec = DomainSpec.parse(row.domains)
        return max(spec.ks) if spec.method == "regroup" else self.original_domains

    def hyperparameters(self, row: Row, user: dict) -> dict:
        """The protocol's settings for the row's strategy (Skill-It's graph runs sized to m), under
        the user's --param, under the row's own."""
        sized = {"graph_fraction": protocol.skillit_graph_fraction(self.most_domains(row))} \
            if row.algo == "skillit" else {}
        return {**sized, **protocol.STRATEGY_DEFAULTS.get(row.algo, {}), **user.get(row.algo, {}), **dict(row.params)}

    def rounds(self, row: Row, steps: int) -> int | None:
        """The row's mixture updates over `steps`, where the protocol fixes them (Aioli's)."""
        return protocol.aioli_rounds(steps, self.most_domains(row)) if row.rounds is not None else None

    def registration(self, settings: PaperSettings, budget: dict) -> Registration:
        return Registration(
            task=self.task.task, budget=budget, ks=settings.ks,
            claims=tuple(c.key for c in protocol.CLAIMS),
            rows=tuple(RegisteredRow(row.key, row.algo, row.domains, self.hyperparameters(row, settings.params),
                                     self.rounds(row, budget["steps"]), registered_seeds(row, settings.quick))
                       for row in self.rows))


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
    plans = []
    for name in settings.tasks:
        task = settings.task_spec(name).create()   # an unknown name: one line, with "did you mean"
        status = task.status()
        if status != "ready":
            raise MixbenchError(f"task {name} is not ready: {status}")
        mapped = protocol.TASKS.get(name) or TaskMap(name, None, task.info().modality)
        m = task.info().original_domains or len(task.load().domains)   # counted where the data decides it
        plans.append(TaskPlan.of(mapped, bool(getattr(task, "eval_domains_unseen", False)), settings.ks, m))
    return plans


@dataclass
class PaperRun:
    plans: list[TaskPlan]
    failed: list[str] = field(default_factory=list)   # cells that failed this time, with their errors


def run_paper(settings: PaperSettings) -> PaperRun:
    """Runs every missing cell of every task's rows, `jobs` cells at a time; returns the plans and
    the cells that failed. Interrupted, it raises PaperInterrupted carrying the run so far."""
    from mixbench.experiments.compare import run_grid

    out_dir = settings.out_dir
    check_writable(out_dir, out_dir / MANIFEST)
    plans = plan_tasks(settings)
    _check_rows_known(settings.rows, plans)
    selected = {p.task.task: select_rows(p, settings.rows) for p in plans}
    earlier = _earlier_manifest(out_dir)
    budgets = {p.task.task: settings.task_spec(p.task.task).create().budget.override(**settings.overrides)
               for p in plans}
    new = _manifest(settings, plans, budgets, selected)
    _check_same_protocol(settings, new, earlier)
    manifest = _with_history(new, earlier)
    write_manifest(out_dir, manifest)
    run = PaperRun(plans)
    try:
        for plan in plans:
            task, config = plan.task.task, budgets[plan.task.task]
            for (folder, domains, rounds, _, _), rows in _groups(selected[task], plan, config.steps).items():
                overrides = dict(settings.overrides)
                if rounds is not None:   # a fixed number of mixture updates over the run's steps
                    overrides["steps_per_round"] = max(1, config.steps // rounds)
                click.echo(f"paper {task}: {', '.join(row.key for row in rows)} ({domains}), seeds "
                           f"{','.join(map(str, settings.seeds_of(rows[0])))} in {folder}/", err=True)
                try:
                    grid = run_grid(settings.grid(plan, folder, rows, domains, overrides))
                except GridInterrupted as stopped:
                    run.failed += [f"{task}: {line}" for line in stopped.result.failed]
                    raise PaperInterrupted(run) from None
                run.failed += [f"{task}: {line}" for line in grid.failed]
    except KeyboardInterrupt as stopped:   # anywhere (a regrouping, say): the record says it stopped
        write_manifest(out_dir, {**manifest, "interrupted_at": now(), "failed_cells": run.failed})
        raise stopped if isinstance(stopped, PaperInterrupted) else PaperInterrupted(run) from None
    write_manifest(out_dir, {**manifest, "finished_at": now(), "failed_cells": run.failed})
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
    """The manifest an earlier `mixbench paper` left under OUT (None: there is none). One that is
    damaged, or from before manifests carried their digest, is refused: writing over it would lose
    the record of the looks it holds."""
    if not (Path(out_dir) / MANIFEST).exists():
        return None
    try:
        return read_manifest(out_dir)
    except MixbenchError as exc:
        raise MixbenchError(f"{exc}; move it away or use another --out") from None


def _check_same_protocol(settings: PaperSettings, manifest: dict, earlier: dict | None) -> None:
    """Some rows under other settings than the earlier run's would leave the other rows' cells from
    the earlier protocol beside them, and one report would compare the two: refused. Every row
    under other settings reruns them all, as compare does, and starts a new history."""
    if settings.rows is None or earlier is None:
        return
    differ = _other_settings(manifest, earlier)
    if differ:
        raise MixbenchError(f"--rows with other {', '.join(differ)} than the run recorded in "
                            f"{MANIFEST} would report two protocols side by side: use another --out, or "
                            "leave --rows out to rerun every row")


def _with_history(manifest: dict, earlier: dict | None) -> dict:
    """`manifest` with the earlier invocations under the same OUT and protocol, the tasks they ran
    that this one does not (so the report keeps them), and the confirmatory verdicts already
    looked at. Another protocol (settings or a registration that differ) starts a new history."""
    if earlier is None or _other_settings(manifest, earlier):
        return {**manifest, "history": []}
    entry = {k: earlier.get(k) for k in ("command", "started_at", "finished_at", "interrupted_at", "git", "seeds",
                                         "rows", "selected", "exploratory")}
    # The same command again (a resumed or repeated run) is one command, not two.
    history = earlier.get("history", []) + ([] if entry["command"] == manifest["command"] else [entry])
    names = {t["task"] for t in manifest["tasks"]}
    kept = [t for t in earlier.get("tasks", []) if t["task"] not in names]
    return {**manifest, "history": history,
            "tasks": manifest["tasks"] + kept,
            "budgets": {**{t["task"]: earlier["budgets"][t["task"]] for t in kept}, **manifest["budgets"]},
            "registration": {**{t["task"]: earlier["registration"][t["task"]] for t in kept},
                             **manifest["registration"]},
            "confirmatory": earlier.get("confirmatory", {})}


def _other_settings(manifest: dict, earlier: dict) -> list[str]:
    """What makes `manifest`'s protocol another than the earlier run's: its settings, or the
    registration of a task both ran."""
    old, new = earlier.get("settings", {}), manifest["settings"]
    differ = [name for name in _PROTOCOL_SETTINGS if new.get(name) != old.get(name)]
    if "registration" not in earlier:   # made before protocols were registered
        return [*differ, "registration"]
    registered = earlier["registration"]
    differ += [f"{task} registration" for task, r in manifest["registration"].items()
               if task in registered and registered[task].get("digest") != r["digest"]]
    return differ


def invocations(manifest: dict) -> list[dict]:
    """Every command under OUT with this protocol, the earliest first, this one last."""
    return [*manifest.get("history", []), manifest]


def report_seeds(manifest: dict, task: str, row: str) -> tuple[int, ...]:
    """Every seed of `row` on `task` a report reads: its registered ones, and the seeds any command
    under OUT ran explicitly (--seeds) with this row selected."""
    registered = next(r["seeds"] for r in manifest["registration"][task]["rows"] if r["key"] == row)
    seeds = set(registered)
    for entry in invocations(manifest):
        if entry.get("seeds") is not None and row in entry.get("selected", {}).get(task, []):
            seeds.update(entry["seeds"])
    return tuple(sorted(seeds))


def _groups(rows: list[Row], plan: TaskPlan, steps: int) -> dict[tuple, list[Row]]:
    """Rows one run_grid call can run together: the same folder, domains, round length and seeds
    (each strategy appears once per folder by construction). The costly baselines (Skill-It,
    Aioli, DGA: m extra runs, evaluations or gradients) come last, so an interrupted or
    still-running protocol already has stratified, R&B and the sweep to report."""
    groups: dict[tuple, list[Row]] = {}
    for row in sorted(rows, key=lambda r: r.algo in protocol.ADAPTIVE_BASELINES):   # stable: row order otherwise
        key = (row.grid, row.domains, plan.rounds(row, steps), row.algo in protocol.ADAPTIVE_BASELINES, row.tier)
        groups.setdefault(key, []).append(row)
    return groups


def cell_path(out_dir: Path, task: str, row: Row, seed: int) -> Path:
    return result_path(Path(out_dir) / row.grid, task, row.algo, DomainSpec.parse(row.domains).label, seed)


def load_rows(out_dir: Path, plan: TaskPlan, seeds_of) -> dict[str, list[RunResult]]:
    """Each row's results over its seeds, `seeds_of(row key)` (a cell without a readable results
    file is missing)."""
    from mixbench.experiments.compare import load_cells

    return {row.key: load_cells([cell_path(out_dir, plan.task.task, row, s) for s in seeds_of(row.key)])
            for row in plan.rows}


def read_manifest(out_dir: Path) -> dict:
    """OUT/paper.json, its content digest checked (a damaged one is refused in one line)."""
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        raise MixbenchError(f"no {MANIFEST} in {out_dir}: run `mixbench paper --out {out_dir}` first")
    manifest = read_json_with_digest(path)
    if "registration" not in manifest:
        raise MixbenchError(f"{path} was written before protocols were pre-registered: this mixbench cannot "
                            f"report it")
    return manifest


def write_manifest(out_dir: Path, manifest: dict) -> None:
    write_json_with_digest(Path(out_dir) / MANIFEST, manifest)


def _manifest(settings: PaperSettings, plans: list[TaskPlan], budgets: dict, selected: dict) -> dict:
    from mixbench import registry

    # identity(): settings added after a protocol was registered leave its digest as it was while
    # they hold their defaults, so a rerun registered before them is still the same protocol.
    budget = {name: {k: v for k, v in cfg.identity().items() if k != "seed"} for name, cfg in budgets.items()}
    registration = {p.task.task: p.registration(settings, budget[p.task.task]).to_dict() for p in plans}
    explicit = settings.seeds is not None
    exploratory = explicit and any(set(settings.seeds) - set(registered_seeds(row, settings.quick))
                                   for rows in selected.values() for row in rows)
    return {
        "command": settings.command,
        "started_at": now(),
        "git": git_state(),
        "seeds": list(settings.seeds) if explicit else None,
        "rows": list(settings.rows) if settings.rows is not None else None,
        "selected": {task: [row.key for row in rows] for task, rows in selected.items()},
        "tasks": [p.to_dict() for p in plans],
        "exploratory": exploratory,   # ran seeds beyond a row's registered ones: a look to count
        "settings": settings.to_manifest(),
        # The embedder with its options (minilm's windows), as the regrouped cells record it.
        "embedder_identity": registry.embedders.create(settings.embedder).identity(),
        "registration": registration,
        "budgets": budget,
        "data": {p.task.task: _data_provenance(settings.task_spec(p.task.task)) for p in plans},
        "versions": versions(),
        "machine": machine(),
    }


def _data_provenance(task: TaskSpec) -> dict:
    """Where a task's data came from and its version, as the task says."""
    info = task.create().info()
    return {"source": info.source, "version": info.version, "license": info.license}
