"""A run's settings as one frozen object, and a comparison grid's as another that yields its cells'.

Everything a run depends on besides its code travels in one `RunSettings`: from the command
line to `run`, from a grid to each of its cells, and (as JSON, `to_dict`/`from_dict`) to a cell
running in its own process. It names the strategy, task and embedder, never holds them: each
place that needs one creates it from the registries, so a name and an object can never disagree.
A user's data file is a task too: its name is the file's, and `task_file` (the file and its field
choices) says how the registered `file` task reads it (task_spec.py).
`RunSettings.resolve` is where user input becomes settings: the task's budget under the user's
overrides, the strategy's default domains, every name and hyperparameter checked, in one line
each (MixbenchError) before anything is read or written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from mixbench.config import TrainConfig
from mixbench.data.datafile import DataFile
from mixbench.errors import MixbenchError
from mixbench.experiments.checkpoints import NEVER, REQUIRED, WHEN_POSSIBLE
from mixbench.experiments.results import result_path
from mixbench.experiments.task_spec import TaskSpec
from mixbench.regroup import DomainSpec
from mixbench.regroup.spec import KChoice

if TYPE_CHECKING:
    from mixbench.embedder import Embedder
    from mixbench.strategy import MixingStrategy
    from mixbench.task import Task

RESUME_MODES = (NEVER, REQUIRED, WHEN_POSSIBLE)


def _frozen(values: Mapping | None) -> Mapping[str, Any]:
    """A read-only copy of `values` (a mapping held by a frozen object must not change under it)."""
    return MappingProxyType(dict(values or {}))


@dataclass(frozen=True)
class TrackingSettings:
    """Where a run is mirrored in MLflow, if at all."""

    enabled: bool = True
    experiment: str = "mixbench"
    uri: str | None = None               # None: MLFLOW_TRACKING_URI, else MLflow's default (./mlflow.db)
    parent_run_id: str | None = None     # the MLflow run this one is a child of (a compare grid's)

    def off(self) -> TrackingSettings:
        return dataclasses.replace(self, enabled=False)


@dataclass(frozen=True)
class RunSettings:
    """One run: which strategy (with its hyperparameters) trains on which task, with which
    training settings and domains, and where its results, checkpoints and MLflow run go."""

    task: str                                         # a registered task's name, or a data file's (task_file)
    algo: str
    config: TrainConfig                               # the task's budget with the user's overrides, seed included
    params: Mapping[str, Any] = field(default_factory=dict)   # the strategy's hyperparameters, all of them
    domains: DomainSpec = DomainSpec("original")
    embedder: str = "minilm"                          # makes the domains when they are regrouped
    out_dir: Path = Path("runs")
    tracking: TrackingSettings = TrackingSettings()
    progress: bool = True
    resume: str = NEVER                               # whether to continue from the checkpoint at the results' path
    checkpoint_every: int | None = None               # also checkpoint every this many steps (round ends always)
    keep_checkpoints: int = 1                         # the last N checkpoints are kept; 0 writes none
    task_file: DataFile | None = None                 # the data file `task` names and its field choices

    def __post_init__(self):
        object.__setattr__(self, "params", _frozen(self.params))
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.resume not in RESUME_MODES:
            raise MixbenchError(f"resume must be one of {', '.join(RESUME_MODES)}, got {self.resume!r}")

    @classmethod
    def resolve(cls, *, task: str, algo: str, params: Mapping[str, Any] | None = None,
                overrides: Mapping[str, Any] | None = None, domains: str | DomainSpec | None = None,
                embedder: str = "minilm", task_file: DataFile | None = None, k_choice: KChoice | None = None,
                **settings) -> RunSettings:
        """The settings of `algo` on `task` (with `task_file`, a data file's): the task's budget
        under `overrides` (None values keep the budget's), `domains` or else the task's default (a
        data file without domains is regrouped) or else the strategy's, the strategy's
        hyperparameters with `params` over its defaults. Any other keyword is a field of
        RunSettings. An unknown name, an unknown or bad hyperparameter or training setting is a
        MixbenchError."""
        from mixbench import registry

        strategy_cls = registry.strategies.get(algo)   # an unknown name: one line, with "did you mean"
        spec = TaskSpec(task, task_file)
        if not isinstance(domains, DomainSpec):
            domains = DomainSpec.parse(domains or spec.default_domains or strategy_cls.default_domains)
        if domains.method == "regroup":   # the only runs that use an embedder: the others never make one
            registry.embedders.create(embedder)
            domains = dataclasses.replace(domains, choice=k_choice or domains.choice)   # how Regroup picks k
            domains.choice.check()
        budget = spec.create().budget
        strategy = _checked_strategy(algo, strategy_cls, params or {})
        return cls(task=task, algo=algo, config=budget.override(**(overrides or {})), params=strategy.get_params(),
                   domains=domains, embedder=embedder, task_file=task_file, **settings)

    def with_seed(self, seed: int) -> RunSettings:
        return dataclasses.replace(self, config=self.config.override(seed=seed))

    @property
    def result_path(self) -> Path:
        """Where the run's results JSON goes (its checkpoints beside it)."""
        return result_path(self.out_dir, self.task, self.algo, self.domains.label, self.config.seed)

    # -- what the names stand for, made afresh -------------------------------------------------
    def create_strategy(self) -> MixingStrategy:
        from mixbench import registry

        return registry.strategies.create(self.algo, **self.params)

    @property
    def task_spec(self) -> TaskSpec:
        return TaskSpec(self.task, self.task_file)

    def create_task(self) -> Task:
        """The task; a data file's refuses a domain with fewer eval rows than the run scores."""
        return self.task_spec.create(eval_per_domain=self.config.eval_per_domain)

    def create_embedder(self) -> Embedder:
        from mixbench import registry

        return registry.embedders.create(self.embedder)

    # -- as plain JSON (a cell of `compare --jobs N` gets its settings this way) ------------------
    def to_dict(self) -> dict:
        return {"task": self.task, "algo": self.algo, "config": self.config.to_dict(), "params": dict(self.params),
                "domains": {"method": self.domains.method, "ks": list(self.domains.ks),
                            "choice": self.domains.choice.to_dict()}, "embedder": self.embedder,
                "out_dir": str(self.out_dir), "tracking": dataclasses.asdict(self.tracking),
                "progress": self.progress, "resume": self.resume, "checkpoint_every": self.checkpoint_every,
                "keep_checkpoints": self.keep_checkpoints,
                "task_file": self.task_file.to_dict() if self.task_file is not None else None}

    @classmethod
    def from_dict(cls, values: dict) -> RunSettings:
        """From `to_dict()` output: the same settings, nothing resolved again."""
        try:
            task_file = values.get("task_file")
            return cls(**{**values, "config": TrainConfig.from_dict(values["config"]),
                          "domains": DomainSpec(values["domains"]["method"], tuple(values["domains"]["ks"]),
                                                KChoice.from_dict(values["domains"].get("choice", {}))),
                          "tracking": TrackingSettings(**values["tracking"]),
                          "task_file": DataFile.from_dict(task_file) if task_file is not None else None})
        except (KeyError, TypeError) as exc:
            raise MixbenchError(f"malformed run settings ({type(exc).__name__}: {exc})") from None


def _checked_strategy(algo: str, strategy_cls: type, params: Mapping[str, Any]):
    """`strategy_cls(**params)`, refused in one line for a name it does not take or a value its
    check_params() rejects."""
    from mixbench import registry

    known = strategy_cls.param_defaults()
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise MixbenchError(f"{algo} has no hyperparameter {', '.join(unknown)} (its hyperparameters: "
                            f"{', '.join(known) or 'none'})")
    strategy = registry.strategies.create(algo, **params)
    try:
        strategy.check_params()
    except ValueError as exc:
        raise MixbenchError(str(exc)) from None
    return strategy


def check_jobs(jobs: int) -> None:
    """Cells run `jobs` at a time: at least one."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise MixbenchError(f"--jobs must be at least 1, got {jobs}")


@dataclass(frozen=True)
class GridSettings:
    """A comparison: every strategy in `algos` on every domain choice and seed, on one task,
    with the same training settings. `cells()` gives each cell's RunSettings."""

    task: str                                        # a registered task's name, or a data file's (task_file)
    algos: tuple[str, ...]
    seeds: tuple[int, ...]
    domains: tuple[str, ...] | None = None           # as --domains spells them (None: each strategy's default)
    overrides: Mapping[str, Any] = field(default_factory=dict)   # training settings over the task's budget
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)   # {algo: its hyperparameters}
    embedder: str = "minilm"
    k_choice: KChoice = KChoice()    # how Regroup picks k for the regrouped cells
    out_dir: Path = Path("runs")
    tracking: TrackingSettings = TrackingSettings(experiment="mixbench-compare")
    progress: bool = True
    keep_cells: bool = False         # a finished cell that ran with other settings is an error, not rerun
    checkpoint_every: int | None = None
    keep_checkpoints: int = 1
    jobs: int = 1                    # cells at a time, each in its own process when more than one
    task_file: DataFile | None = None   # the data file `task` names and its field choices

    def __post_init__(self):
        check_jobs(self.jobs)   # first: before anything is read or written
        algos = tuple(dict.fromkeys(self.algos))
        if not algos or not self.seeds:
            raise MixbenchError(f"a grid needs strategies and seeds, got {list(algos)} and {list(self.seeds)}")
        if len(set(self.seeds)) != len(self.seeds):
            raise MixbenchError(f"seeds has duplicates: {list(self.seeds)}")
        overrides = {k: v for k, v in self.overrides.items() if v is not None}   # None: the budget's own
        if "seed" in overrides:
            raise MixbenchError("a grid's cells take their seeds from its seeds, not from its training settings")
        strangers = sorted(set(self.params) - set(algos))
        if strangers:
            raise MixbenchError(f"hyperparameters for {', '.join(strangers)}, which is not among the strategies "
                                f"({', '.join(algos)})")
        object.__setattr__(self, "algos", algos)
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if self.domains is not None:
            object.__setattr__(self, "domains", tuple(dict.fromkeys(self.domains)))
            for spec in self.domains:
                DomainSpec.parse(spec)   # a bad one is refused now, in one line
        object.__setattr__(self, "overrides", _frozen(overrides))
        object.__setattr__(self, "params", _frozen({a: _frozen(p) for a, p in self.params.items()}))
        object.__setattr__(self, "out_dir", Path(self.out_dir))

    def cells(self) -> list[RunSettings]:
        """Every cell's settings, strategy by strategy, then domains, then seed. A cell resumes
        from its checkpoint when it can (an interrupted grid goes on where it stopped). Every
        name, hyperparameter and training setting is checked here, before any cell runs."""
        cells = []
        for algo in self.algos:
            for domains in self.domains or (None,):
                base = RunSettings.resolve(
                    task=self.task, task_file=self.task_file, algo=algo, params=self.params.get(algo),
                    overrides=self.overrides,
                    domains=domains, embedder=self.embedder, k_choice=self.k_choice, out_dir=self.out_dir,
                    tracking=self.tracking,
                    progress=self.progress, resume=WHEN_POSSIBLE, checkpoint_every=self.checkpoint_every,
                    keep_checkpoints=self.keep_checkpoints)
                cells += [base.with_seed(seed) for seed in self.seeds]
        return cells
