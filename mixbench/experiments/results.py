"""The results of one run: one schema for every strategy and task, written as JSON beside the run
and read back by `compare`, `report`, the run summary and MLflow logging.

`RunResult.to_json` / `RunResult.from_json` are the only places that know the JSON layout. Files
written by earlier versions of the schema are brought up to date in `from_json`, once; nothing
downstream needs a fallback. JSON has no NaN: a missing value is written as null and read back
as NaN.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mixbench.config import TrainConfig
from mixbench.engine.history import RoundRecord, RunHistory
from mixbench.engine.meter import OverheadReport
from mixbench.errors import MixbenchError
from mixbench.storage.atomic import json_safe, write_json
from mixbench.storage.typed_json import type_problem
from mixbench.strategy import MixingStrategy
from mixbench.task import TaskInfo

SCHEMA_VERSION = 1
NAN = float("nan")


def result_path(out_dir: Path, task: str, algo: str, domains: str, seed: int) -> Path:
    """The fixed place of a run's results: <out>/<task>/<algo>/<domains>/seed<n>.json."""
    return Path(out_dir) / task / algo / domains / f"seed{seed}.json"


@dataclass
class StrategyRecord:
    name: str                                   # the registry name it ran under
    params: dict
    extras: dict = field(default_factory=dict)  # strategy.report_extras(), e.g. rnb's last Gram


@dataclass
class TaskRecord:
    name: str
    description: str
    source: str
    license: str
    version: str
    modality: str
    original_domains: int | None
    num_domains: int            # the domains the run trained on (original or regrouped)


@dataclass
class DomainsRecord:
    """How the run's domains were made; the regroup fields are None for original domains."""

    method: str                       # "original" or "regroup"
    names: list[str]
    embedder: str | None = None       # the embedder's identity
    k: int | None = None
    silhouette: float | None = None
    embedder_name: str | None = None
    k_swept: list[int] | None = None
    original_domains: int | None = None
    regroup_seconds: float | None = None
    embeddings_cached: bool | None = None
    clustering_seed: int | None = None   # k-means' seed: the run's own (None: made before it followed the run's)
    k_rule: str | None = None            # the k rule that chose k (mixbench.k_rule; None: made before rules)
    min_cluster_size: int | None = None  # a k with a smaller cluster was passed over
    collapse: float | None = None        # near-duplicates at this cosine counted once before clustering
    sweep: list[dict] | None = None      # per k swept: inertia, smallest cluster and every rule's measures


@dataclass
class Metrics:
    initial_mean_eval_loss: float
    final_mean_eval_loss: float
    initial_eval_losses: dict[str, float]
    final_eval_losses: dict[str, float]
    # The same eval rows scored by the task's original domains: comparable across runs on
    # different domain definitions (for a run on original domains it equals the above).
    initial_reference_eval_loss: float
    final_reference_eval_loss: float
    final_reference_eval_losses: dict[str, float]
    reference_proportions: dict[str, float]
    # Task metrics beyond the loss (image-text: zero-shot retrieval), overall and per domain.
    initial_eval_metrics: dict[str, float]
    final_eval_metrics: dict[str, float]
    final_domain_eval_metrics: dict[str, dict[str, float]]
    steps_done: int
    tokens_trained: int
    num_params: int
    train_seconds: float
    eval_rows: list[int]              # indices into the task's eval split, for comparability
    tap_accumulator: str = ""         # how the gradient tap kept its per-domain sums (exact or sketched)
    # Wall seconds per stage of the run: loading, embedding, k_sweep, assignment (a regrouped run's,
    # absent when served from the cache), training, and evaluation (within training). Empty in
    # results written before stages were timed.
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Overhead(OverheadReport):
    """The meter's figures, and the paper's App. D formula for the same run beside them."""

    paper_formula_flops: float | None
    measured_over_formula: float | None

    @classmethod
    def of(cls, report: OverheadReport, formula: float | None) -> Overhead:
        return cls(**dataclasses.asdict(report), paper_formula_flops=formula,
                   measured_over_formula=report.overhead_flops / formula if formula else None)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "paper_formula_flops": self.paper_formula_flops,
                "measured_over_formula": self.measured_over_formula}

    @classmethod
    def from_dict(cls, values: dict) -> Overhead:
        """From `to_dict()` output; the percentages are derived, not read. Results from before
        bytes were metered have none."""
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name != "bytes_by_label"},
                   bytes_by_label=values.get("bytes_by_label", {}))


@dataclass
class Environment:
    mixbench: str
    torch: str
    numpy: str
    python: str
    platform: str
    device: str
    git_hash: str
    world_size: int = 1   # processes that trained the model together (data parallel)

    @classmethod
    def current(cls, device: str, world_size: int = 1) -> Environment:
        return cls(mixbench=_version("mixbench"), torch=_version("torch"), numpy=_version("numpy"),
                   python=platform.python_version(), platform=platform.platform(), device=device,
                   git_hash=git_hash(), world_size=world_size)


@dataclass
class MixtureTrajectory:
    per_round: list[list[float]]      # the mixture each round sampled from
    final: list[float]                # the one the strategy chose last


@dataclass(frozen=True)
class MlflowRun:
    """The MLflow run a result was mirrored in."""

    run_id: str
    experiment_id: str
    tracking_uri: str


@dataclass(frozen=True)
class SavedTo:
    """Where the process that ran a result saved it: its results JSON, and its MLflow run while
    tracking worked."""

    path: Path
    mlflow: MlflowRun | None = None


@dataclass
class RunResult:
    status: str                       # finished | interrupted | failed | diverged
    error: str | None
    started_at: str
    finished_at: str
    strategy: StrategyRecord
    task: TaskRecord
    domains: DomainsRecord
    seed: int
    config: TrainConfig
    environment: Environment
    metrics: Metrics
    overhead: Overhead | None
    eval_proportions: list[float]
    mixture: MixtureTrajectory
    rounds: list[RoundRecord]
    train_losses: list[float]
    schema_version: int = SCHEMA_VERSION
    # Set by the run that saved it (None: read from a file, or a process that saves nothing, such as
    # a data-parallel run's other ranks). Not in the JSON: a file moves, and outlives its MLflow store.
    saved_to: SavedTo | None = field(default=None, compare=False, repr=False)

    # -- what comparisons read -----------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def diverged(self) -> bool:
        """Its loss stopped being finite: settled (rerunning it with the same settings diverges
        again), but there is no final loss to compare."""
        return self.status == "diverged"

    @property
    def final_loss(self) -> float:
        """The loss runs are compared on: Σ q_i L_i over the task's ORIGINAL domains, the same
        quantity whatever domains a run trained on."""
        return self.metrics.final_reference_eval_loss

    def steps_to_reach(self, target: float) -> float:
        """The first round-end step at which the eval loss is at or below `target` (NaN: never)."""
        for record in self.rounds:
            if record.reference_eval_loss <= target:
                return float(record.step)
        return NAN

    # -- building, writing, reading --------------------------------------------------------------
    @classmethod
    def from_run(cls, *, algo: str, strategy: MixingStrategy, task_name: str, task_info: TaskInfo, cfg: TrainConfig,
                 history: RunHistory, status: str, error: str | None, started_at: str,
                 domains: DomainsRecord, stage_seconds: dict[str, float] | None = None) -> RunResult:
        names = list(history.domains)
        last = history.last_evaluated
        return cls(
            status=status, error=error, started_at=started_at, finished_at=now(),
            strategy=StrategyRecord(name=algo, params=strategy.get_params(), extras=strategy.report_extras()),
            task=TaskRecord(**{**dataclasses.asdict(task_info), "name": task_name}, num_domains=len(names)),
            domains=dataclasses.replace(domains, names=names),
            seed=cfg.seed, config=cfg, environment=Environment.current(history.device, history.world_size),
            metrics=Metrics(
                initial_mean_eval_loss=history.initial_mean_eval_loss,
                final_mean_eval_loss=history.final_mean_eval_loss,
                initial_eval_losses=dict(zip(names, history.initial_eval_losses)),
                final_eval_losses=dict(zip(names, history.final_eval_losses)),
                initial_reference_eval_loss=history.initial_reference_eval_loss,
                final_reference_eval_loss=history.final_reference_eval_loss,
                final_reference_eval_losses=dict(zip(history.reference_domains, history.final_reference_eval_losses)),
                reference_proportions=dict(zip(history.reference_domains, history.reference_proportions)),
                initial_eval_metrics=history.initial_eval_metrics,
                final_eval_metrics=history.final_eval_metrics,
                final_domain_eval_metrics={name: dict(zip(names, values))
                                           for name, values in (last.domain_eval_metrics if last else {}).items()},
                steps_done=len(history.train_losses), tokens_trained=history.tokens_trained,
                num_params=history.num_params, train_seconds=history.seconds, eval_rows=history.eval_rows,
                tap_accumulator=history.tap_accumulator, stage_seconds=dict(stage_seconds or {}),
            ),
            overhead=_overhead(history, strategy),
            eval_proportions=history.eval_proportions,
            mixture=MixtureTrajectory(per_round=[r.mixture for r in history.rounds], final=history.final_mixture),
            rounds=list(history.rounds), train_losses=history.train_losses,
        )

    def to_json(self) -> dict:
        payload = dataclasses.asdict(self)
        del payload["saved_to"]
        payload["domains"] = {k: v for k, v in payload["domains"].items() if v is not None}
        payload["overhead"] = self.overhead.to_dict() if self.overhead is not None else None
        return json_safe({"schema_version": payload.pop("schema_version"), **payload})

    @classmethod
    def from_json(cls, payload: dict) -> RunResult:
        """Raises MixbenchError naming what is wrong when `payload` is not a mixbench result."""
        if not is_run_result(payload):
            raise MixbenchError("not a mixbench run result (a JSON object with schema_version, status and rounds)")
        if not isinstance(payload["schema_version"], int):
            raise MixbenchError(f"malformed results (schema_version {payload['schema_version']!r})")
        if payload["schema_version"] > SCHEMA_VERSION:
            raise MixbenchError(f"written by a newer mixbench (results schema {payload['schema_version']}, "
                                f"this version reads up to {SCHEMA_VERSION})")
        try:
            current = _upgrade(payload)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MixbenchError(f"malformed results ({type(exc).__name__}: {exc})") from None
        # Every field as the schema types it, before any is used: a loss that is a string, or an
        # Infinity (json reads it; mixbench writes null for a missing number), is named here.
        problem = type_problem(current, cls)
        if problem:
            raise MixbenchError(f"malformed results: {problem}")
        try:
            return cls._from_current(current)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:   # a field missing
            raise MixbenchError(f"malformed results ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _from_current(cls, p: dict) -> RunResult:
        metrics = {k: _floats(v) for k, v in p["metrics"].items()}   # counts hold no nulls: unchanged
        overhead = p["overhead"]
        return cls(
            schema_version=p["schema_version"], status=p["status"], error=p["error"], started_at=p["started_at"],
            finished_at=p["finished_at"], strategy=StrategyRecord(**p["strategy"]), task=TaskRecord(**p["task"]),
            domains=DomainsRecord(**p["domains"]), seed=p["seed"], config=TrainConfig.from_dict(p["config"]),
            environment=Environment(**p["environment"]),
            metrics=Metrics(**metrics),
            overhead=Overhead.from_dict(overhead) if overhead is not None else None,
            eval_proportions=_floats(p["eval_proportions"]),
            mixture=MixtureTrajectory(**{k: _floats(v) for k, v in p["mixture"].items()}),
            rounds=[RoundRecord(**{k: _floats(v) for k, v in r.items()}) for r in p["rounds"]],
            train_losses=_floats(p["train_losses"]),
        )

    def save(self, path: Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> RunResult:
        """Raises MixbenchError naming the file when it cannot be read as a run result."""
        try:
            payload = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise MixbenchError(f"cannot read {path}: {exc}") from None
        try:
            return cls.from_json(payload)
        except MixbenchError as exc:
            raise MixbenchError(f"{path}: {exc}") from None


def is_run_result(payload) -> bool:
    return isinstance(payload, dict) and {"schema_version", "status", "rounds"} <= set(payload)


def _upgrade(payload: dict) -> dict:
    """Fill what files of schema 1 written before a field existed lack. Results from before the
    reference eval loss (scored by original domains) existed are compared on their own eval loss."""
    p = json.loads(json.dumps(payload))   # a deep copy the caller's dict does not share
    metrics = p["metrics"]
    metrics.setdefault("initial_reference_eval_loss", metrics["initial_mean_eval_loss"])
    metrics.setdefault("final_reference_eval_loss", metrics["final_mean_eval_loss"])
    metrics.setdefault("final_reference_eval_losses", metrics["final_eval_losses"])
    metrics.setdefault("reference_proportions", {})
    for key in ("initial_eval_metrics", "final_eval_metrics", "final_domain_eval_metrics"):
        metrics[key] = metrics.get(key) or {}
    metrics.setdefault("eval_rows", [])
    for record in p["rounds"]:
        record.setdefault("reference_eval_loss", record["mean_eval_loss"])
        record.setdefault("reference_eval_losses", [])
        record["eval_metrics"] = record.get("eval_metrics") or {}
        record["domain_eval_metrics"] = record.get("domain_eval_metrics") or {}
    p["strategy"].setdefault("extras", {})
    return p


def _floats(value):
    """JSON nulls back to NaN, through lists and dicts; everything else as it is."""
    if value is None:
        return NAN
    if isinstance(value, list):
        return [_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    return value


def _overhead(history: RunHistory, strategy: MixingStrategy) -> Overhead | None:
    if history.meter is None:
        return None
    formula = strategy.paper_overhead_flops(history.shape) if history.shape is not None else None
    return Overhead.of(history.meter.report(), formula)


def git_hash() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)
