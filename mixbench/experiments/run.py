"""One `mixbench run`: load the task, train, save the results JSON, mirror it to MLflow, summarise.

Whatever happens during training (finish, Ctrl-C, a crash) the results JSON is written with
its status and everything recorded so far, and the MLflow run is closed with a matching status.
Started by torchrun as one of several processes, the run trains data-parallel, and rank 0 alone
writes the results, the checkpoints and MLflow and prints the summary.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from mixbench.config import TrainConfig
from mixbench.embedder import Embedder
from mixbench.engine.evaluation import EvalReference, select_eval_subset
from mixbench.engine.history import RunHistory
from mixbench.errors import MixbenchError, TrainingDiverged
from mixbench.experiments.checkpoints import NEVER, check_domains, checkpoint_plan, run_identity
from mixbench.experiments.results import DomainsRecord, RunResult, now, result_path
from mixbench.regroup import DomainSpec
from mixbench.storage.atomic import check_writable
from mixbench.strategy import MixingStrategy
from mixbench.task import Task

if TYPE_CHECKING:
    from mixbench.engine.checkpoint import Checkpoint
    from mixbench.engine.distributed import SingleProcess

EXIT_INTERRUPTED = 130
EXIT_DIVERGED = 3      # the run ended early because its loss stopped being finite
TRACKER_STATUS = {"finished": "FINISHED", "interrupted": "KILLED", "failed": "FAILED", "diverged": "FAILED"}


@dataclass
class RunRequest:
    algo: str
    strategy: MixingStrategy
    task_name: str
    task: Task
    config: TrainConfig                  # the task's budget with the user's overrides
    out_dir: Path
    use_mlflow: bool = True
    experiment: str = "mixbench"
    tracking_uri: str | None = None
    progress: bool = True
    domains: DomainSpec = DomainSpec("original")
    embedder_name: str = "minilm"
    embedder: Embedder | None = None     # required when domains.method == "regroup"
    parent_run_id: str | None = None     # MLflow run this one is a child of (a compare grid)
    quiet: bool = False                  # no summary on stdout (compare prints its own table)
    resume: str = NEVER                  # whether to continue from the checkpoint at the results' path
    checkpoint_every: int | None = None  # also checkpoint every this many steps (round ends always)
    keep_checkpoints: int = 1            # the last N checkpoints are kept; 0 writes none


def execute(req: RunRequest) -> int:
    """Runs the request; returns the process exit code. Raises MixbenchError for bad input."""
    from mixbench.engine.distributed import join

    ranks = join(req.config.device)   # one process, or one rank of a torchrun job
    if not ranks.writer:              # rank 0 tells and records; the others only train
        req = dataclasses.replace(req, use_mlflow=False, progress=False, quiet=True)
    try:
        return _execute(req, ranks)
    finally:
        ranks.leave()


def _execute(req: RunRequest, ranks: SingleProcess) -> int:
    from mixbench.engine import train

    cfg = req.config
    path = result_path(req.out_dir, req.task_name, req.algo, req.domains.label, cfg.seed)
    check_writable(path.parent, path)   # before any training: a folder where the results go is refused now
    info = req.task.info()
    # A resume that cannot be (no checkpoint, a damaged one, another run's) is refused here, before anything is written.
    plan = checkpoint_plan(path, _identity(req, info, ranks.world_size), resume=req.resume,
                           every=req.checkpoint_every, keep=req.keep_checkpoints)
    tracker, domains = None, DomainsRecord(method="original", names=[])
    history, status, error, started_at = RunHistory(), "failed", None, now()
    try:   # from loading on: an interrupt while the task loads or regroups still leaves its results file
        with ranks.writer_first():   # a regrouping is made once, by rank 0; the others read it from the cache
            data, domains, eval_rows, reference = _load(req, info)
        plan = check_domains(plan, data, req.resume)
        ranks.check_same(plan.notes["domains fingerprint"], "the task's domains")
        if plan.resume is not None:
            started_at = plan.resume.notes.get("started_at") or started_at
            if ranks.writer:
                click.echo(f"resuming from {plan.path} at step {plan.resume.step} of {cfg.steps} "
                           f"({plan.resume.rounds_done} of {cfg.num_rounds} rounds done)", err=True)
        tracker = _start_tracker(req, cfg, plan.resume) if req.use_mlflow else None
        plan.notes.update(started_at=started_at, mlflow_run_id=tracker.run_id if tracker is not None else None)
        callbacks = []
        if tracker is not None and tracker.active:
            from mixbench.experiments.tracking import RoundLogger

            tracker.log_params(_flat_params(req, cfg, info, len(data.domains), domains))
            callbacks.append(RoundLogger(tracker, data.domains))
        train(data, req.strategy, cfg, history=history, progress=req.progress, eval_rows=eval_rows,
              reference=reference, callbacks=callbacks, checkpoints=plan, ranks=ranks)
        status = "finished"
    except KeyboardInterrupt as exc:   # Ctrl-C, or SIGTERM/SIGHUP as the command line turns them into one
        status, error = "interrupted", f"interrupted by {exc.args[0] if exc.args else 'the user'}"
    except TrainingDiverged as exc:
        status, error = "diverged", str(exc)
    except MixbenchError as exc:
        error = str(exc)
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        # A run refused before its first evaluation (a hyperparameter that does not fit the task,
        # say) has nothing to keep: no results file, and its MLflow run is marked failed. Nor has
        # a resume stopped before its checkpoint was restored: the results file there stays.
        refused = not history.initial_eval_losses and (status == "failed" or plan.resume is not None)
        written = not refused and ranks.writer
        result = RunResult.from_run(algo=req.algo, strategy=req.strategy, task_name=req.task_name, task_info=info,
                                    cfg=cfg, history=history, status=status, error=error, started_at=started_at,
                                    domains=domains)
        if written:
            result.save(path)
        if tracker is not None:
            if refused:
                tracker.finish("FAILED")
            else:
                _finish_tracker(tracker, result, path)
        if status != "finished" and written:
            reason = f"{error}; " if status == "diverged" else ""
            resumable = "; --resume continues it from its checkpoint" \
                if status == "interrupted" and plan.path.exists() else ""
            click.echo(f"{status}: {reason}partial results ({len(history.train_losses)} steps) saved to {path}"
                       f"{resumable}", err=True)
    if status == "diverged":
        return EXIT_DIVERGED
    # A run stopped before its first evaluation has no losses to show: the line above said where it went.
    if not req.quiet and history.initial_eval_losses:
        from mixbench.experiments.run_summary import print_summary

        print_summary(result, path, tracker if tracker is not None and tracker.active else None)
    return 0 if status == "finished" else EXIT_INTERRUPTED


def _load(req: RunRequest, info):
    """The task's data (regrouped if asked), its domains record, and the eval rows scored and how."""
    data = req.task.load()
    # The eval examples scored are drawn by the task's ORIGINAL domains, before any regrouping,
    # so runs on original and regrouped domains are scored on the very same examples.
    original_eval_domains = [e.domain for e in data.eval]
    eval_rows = select_eval_subset(np.array(original_eval_domains), req.config.eval_per_domain)
    reference = EvalReference.of(original_eval_domains)   # and scored by them, too
    domains = DomainsRecord(method="original", names=[])
    if req.domains.method == "regroup":
        data, domains = _regroup(req, data, info)
    data.require_eval_in_train()
    return data, domains, eval_rows, reference


def _identity(req: RunRequest, info, world_size: int) -> dict:
    return run_identity(task_name=req.task_name, task_version=info.version, algo=req.algo,
                        params=req.strategy.get_params(), config=req.config.to_dict(), domains=req.domains,
                        embedder_name=req.embedder_name, world_size=world_size)


def _start_tracker(req: RunRequest, cfg: TrainConfig, resumed: Checkpoint | None = None):
    from mixbench.experiments.tracking import MlflowTracker

    tags = {"mixbench.algo": req.algo, "mixbench.task": req.task_name,
            **({"mlflow.parentRunId": req.parent_run_id} if req.parent_run_id else {})}
    if resumed is not None:   # a new MLflow run: the one it continues is named (or, if it had none, the checkpoint)
        tags.update({"mixbench.resumed_from": resumed.notes.get("mlflow_run_id") or str(resumed.path),
                     "mixbench.resumed_at_step": str(resumed.step)})
    return MlflowTracker(experiment=req.experiment, tracking_uri=req.tracking_uri,
                         run_name=f"{req.algo}-{req.task_name}-{req.domains.label}-seed{cfg.seed}", tags=tags)


def _regroup(req: RunRequest, data, info):
    """Relabel the task's examples with Regroup's clusters (embeddings and clustering cached)."""
    from mixbench.regroup import apply, regroup

    # Regroup is a one-time cost (the paper counts it apart from training): timed, reported,
    # not part of the per-round overhead. Clustering uses seed 0 whatever the run's seed, so
    # every seed of a comparison trains on the same domains.
    started = time.perf_counter()
    grouping = regroup(data, info, req.embedder, list(req.domains.ks), seed=0, progress=req.progress)
    seconds = time.perf_counter() - started
    cached = ", embeddings from cache" if grouping.cached_embeddings else ""
    click.echo(f"regrouped {info.name} into k={grouping.k} domains (silhouette {grouping.silhouette:.4f}, "
               f"{req.embedder_name}{cached}, {seconds:.0f} s)", err=True)
    domains = DomainsRecord(method="regroup", names=[], embedder=grouping.embedder, k=grouping.k,
                            silhouette=grouping.silhouette, embedder_name=req.embedder_name,
                            k_swept=[int(fit["k"]) for fit in grouping.sweep], original_domains=len(data.domains),
                            regroup_seconds=seconds, embeddings_cached=grouping.cached_embeddings)
    return apply(data, grouping), domains


def _flat_params(req: RunRequest, cfg: TrainConfig, info, num_domains: int, domains: DomainsRecord) -> dict:
    params = {f"strategy.{k}": v for k, v in req.strategy.get_params().items()}
    params.update({f"train.{k}": v for k, v in cfg.to_dict().items()})
    params.update({f"domains.{k}": v for k, v in dataclasses.asdict(domains).items()
                   if v is not None and k != "names"})
    params.update({"algo": req.algo, "task": req.task_name, "task.version": info.version,
                   "task.num_domains": num_domains})
    return params


def _finish_tracker(tracker, result: RunResult, path: Path) -> None:
    from mixbench.experiments.plots import plot_mixture

    if result.overhead is not None:
        numbers = {k: v for k, v in result.overhead.to_dict().items() if isinstance(v, (int, float))}
        tracker.log_metrics({f"overhead.{k}": v for k, v in numbers.items()}, step=result.metrics.steps_done)
    tracker.log_artifact(path)
    if result.rounds:
        png = plot_mixture(result.mixture.per_round, result.domains.names, path.with_suffix(".mixture.png"),
                           title=f"{result.strategy.name} on {result.task.name}: mixture per round")
        tracker.log_artifact(png)
    tracker.finish(TRACKER_STATUS[result.status])
