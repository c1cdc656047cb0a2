"""One run: load the task, train, save the results JSON, mirror it to MLflow; return the result.

Whatever happens during training (finish, Ctrl-C, a crash) the results JSON is written with
its status and everything recorded so far, and the MLflow run is closed with a matching status.
Started by torchrun as one of several processes, the run trains data-parallel, and rank 0 alone
writes the results, the checkpoints and MLflow.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from mixbench.embedder import Embedder
from mixbench.engine.evaluation import EvalReference, select_eval_subset
from mixbench.engine.history import RunHistory
from mixbench.errors import MixbenchError, TrainingDiverged
from mixbench.experiments.checkpoints import check_domains, checkpoint_plan, run_identity, what_was_kept
from mixbench.experiments.outcomes import RunDiverged, RunInterrupted
from mixbench.experiments.results import DomainsRecord, MlflowRun, RunResult, SavedTo, now
from mixbench.experiments.settings import RunSettings
from mixbench.storage.atomic import UnwritableOutput, check_writable
from mixbench.strategy import MixingStrategy

if TYPE_CHECKING:
    from mixbench.engine.checkpoint import Checkpoint
    from mixbench.engine.distributed import SingleProcess

TRACKER_STATUS = {"finished": "FINISHED", "interrupted": "KILLED", "failed": "FAILED", "diverged": "FAILED"}


def run(settings: RunSettings) -> RunResult:
    """Trains as `settings` say and returns the finished run's result. A run that ends early
    raises, its result saved and carried: RunInterrupted (Ctrl-C, SIGTERM), RunDiverged (a
    non-finite loss). Bad input is a MixbenchError, raised before anything is written; a crash
    is raised as itself, after its record is saved with status `failed`."""
    from mixbench.engine.distributed import join

    ranks = join(settings.config.device)   # one process, or one rank of a torchrun job
    if not ranks.writer:                   # rank 0 tells and records; the others only train
        settings = dataclasses.replace(settings, tracking=settings.tracking.off(), progress=False)
    try:
        return _run(settings, ranks)
    finally:
        ranks.leave()


def _run(settings: RunSettings, ranks: SingleProcess) -> RunResult:
    from mixbench.engine import train

    cfg, path = settings.config, settings.result_path
    check_writable(path.parent, path)   # before any training: a folder where the results go is refused now
    task, strategy = settings.create_task(), settings.create_strategy()
    info = task.info()
    # A resume that cannot be (no checkpoint, a damaged one, another run's) is refused here, before anything is written.
    plan = checkpoint_plan(path, _identity(settings, strategy, info, ranks.world_size), resume=settings.resume,
                           every=settings.checkpoint_every, keep=settings.keep_checkpoints)
    tracker, domains = None, DomainsRecord(method="original", names=[])
    history, status, error, started_at = RunHistory(), "failed", None, now()
    stage_seconds: dict[str, float] = {}   # filled as each stage ends: the summary's and the results' timings
    try:   # from loading on: an interrupt while the task loads or regroups still leaves its results file
        with ranks.writer_first():   # a regrouping is made once, by rank 0; the others read it from the cache
            data, domains, eval_rows, reference = _load(settings, task, info, stage_seconds)
        plan = check_domains(plan, data, settings.resume)
        ranks.check_same(plan.notes["domains fingerprint"], "the task's domains")
        if plan.resume is not None:
            started_at = plan.resume.notes.get("started_at") or started_at
            if ranks.writer:
                click.echo(f"resuming from {plan.path} at step {plan.resume.step} of {cfg.steps} "
                           f"({plan.resume.rounds_done} of {cfg.num_rounds} rounds done)", err=True)
        tracker = _start_tracker(settings, plan.resume) if settings.tracking.enabled else None
        plan.notes.update(started_at=started_at, mlflow_run_id=tracker.run_id if tracker is not None else None)
        callbacks = []
        if tracker is not None and tracker.active:
            from mixbench.experiments.tracking import RoundLogger

            tracker.log_params(_flat_params(settings, strategy, info, len(data.domains), domains))
            callbacks.append(RoundLogger(tracker, data.domains))
        train(data, strategy, cfg, history=history, progress=settings.progress, eval_rows=eval_rows,
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
        stage_seconds.update(_training_seconds(history))
        result = RunResult.from_run(algo=settings.algo, strategy=strategy, task_name=settings.task, task_info=info,
                                    cfg=cfg, history=history, status=status, error=error, started_at=started_at,
                                    domains=domains, stage_seconds=stage_seconds)
        unsaved = None
        if written:
            try:
                result.save(path)
            except UnwritableOutput as exc:   # a full disk, say: the rest still ends properly, then says what is kept
                unsaved, written = exc, False
        if tracker is not None:
            if refused or unsaved is not None:
                tracker.finish("FAILED")
            else:
                _finish_tracker(tracker, result, path)
        if unsaved is not None:
            raise MixbenchError(f"{unsaved}; {what_was_kept(plan, _mlflow_run(tracker))}") from None
        if written:
            result.saved_to = SavedTo(path, _mlflow_run(tracker))
        if status != "finished" and written:
            reason = f"{error}; " if status == "diverged" else ""
            resumable = "; --resume continues it from its checkpoint" \
                if status == "interrupted" and plan.path.exists() else ""
            click.echo(f"{status}: {reason}partial results ({len(history.train_losses)} steps) saved to {path}"
                       f"{resumable}", err=True)
    if status == "diverged":
        raise RunDiverged(result)
    if status == "interrupted":
        raise RunInterrupted(result, error)
    return result


def _training_seconds(history: RunHistory) -> dict[str, float]:
    """The training loop's wall seconds, and the evaluations' within them (the meter times each)."""
    if not history.seconds and history.meter is None:
        return {}
    evaluation = sum(seconds for (category, label), seconds in history.meter.seconds.items()
                     if label.endswith("eval")) if history.meter is not None else 0.0
    return {"training": history.seconds, "evaluation": evaluation}


def _load(settings: RunSettings, task, info, stage_seconds: dict[str, float] | None = None):
    """The task's data (regrouped if asked), its domains record, and the eval rows scored and how."""
    started = time.perf_counter()
    data = task.load()
    stage_seconds = stage_seconds if stage_seconds is not None else {}
    stage_seconds["loading"] = time.perf_counter() - started
    # The eval examples scored are drawn by the task's ORIGINAL domains, before any regrouping,
    # so runs on original and regrouped domains are scored on the very same examples.
    original_eval_domains = [e.domain for e in data.eval]
    eval_rows = select_eval_subset(np.array(original_eval_domains), settings.config.eval_per_domain)
    reference = EvalReference.of(original_eval_domains)   # and scored by them, too
    domains = DomainsRecord(method="original", names=[])
    if settings.domains.method == "regroup":
        data, domains = _regroup(settings, settings.create_embedder(), data, info, stage_seconds)
    data.require_eval_in_train()
    return data, domains, eval_rows, reference


def _identity(settings: RunSettings, strategy: MixingStrategy, info, world_size: int) -> dict:
    return run_identity(task_name=settings.task, task_version=info.version, algo=settings.algo,
                        params=strategy.get_params(), config=settings.config.identity(), domains=settings.domains,
                        embedder_name=settings.embedder, world_size=world_size)


def _start_tracker(settings: RunSettings, resumed: Checkpoint | None = None):
    from mixbench.experiments.tracking import MlflowTracker

    tracking = settings.tracking
    tags = {"mixbench.algo": settings.algo, "mixbench.task": settings.task, "mixbench.regime": settings.config.regime,
            **({"mlflow.parentRunId": tracking.parent_run_id} if tracking.parent_run_id else {})}
    if resumed is not None:   # a new MLflow run: the one it continues is named (or, if it had none, the checkpoint)
        tags.update({"mixbench.resumed_from": resumed.notes.get("mlflow_run_id") or str(resumed.path),
                     "mixbench.resumed_at_step": str(resumed.step)})
    return MlflowTracker(experiment=tracking.experiment, tracking_uri=tracking.uri, tags=tags,
                         run_name=f"{settings.algo}-{settings.task}-{settings.domains.label}-seed{settings.config.seed}")


def _mlflow_run(tracker) -> MlflowRun | None:
    """The MLflow run the result is in, if tracking started and still works."""
    if tracker is None or not tracker.active:
        return None
    return MlflowRun(tracker.run_id, tracker.experiment_id, tracker.tracking_uri)


def _regroup(settings: RunSettings, embedder: Embedder, data, info, stage_seconds: dict[str, float] | None = None):
    """Relabel the task's examples with Regroup's clusters (embeddings and clustering cached)."""
    from mixbench.regroup import apply, regroup
    from mixbench.regroup.why_k import why_k

    # Regroup is a one-time cost (the paper counts it apart from training): timed, reported,
    # not part of the per-round overhead. The clustering is seeded by the run's seed: k-means is
    # random too, so each seed of a comparison has its own clustering, and the spread over seeds
    # includes the clustering's (the embeddings, which are not random, are shared).
    started = time.perf_counter()
    seed = settings.config.seed
    choice = settings.domains.choice
    grouping = regroup(data, info, embedder, list(settings.domains.ks), seed=seed, choice=choice,
                       progress=settings.progress)
    seconds = time.perf_counter() - started
    cached = ", embeddings from cache" if grouping.cached_embeddings else ""
    silhouette = "" if grouping.silhouette is None else f", silhouette {grouping.silhouette:.4f}"
    click.echo(f"regrouped {info.name} into k={grouping.k} domains (k rule {choice.label}{silhouette}, "
               f"{settings.embedder}{cached}, {seconds:.0f} s)", err=True)
    for line in why_k(grouping.sweep, choice.rule, grouping.k, len(data.domains)):
        click.echo(line, err=True)
    if stage_seconds is not None:
        stage_seconds.update(grouping.seconds)
    domains = DomainsRecord(method="regroup", names=[], embedder=grouping.embedder, k=grouping.k,
                            silhouette=grouping.silhouette, embedder_name=settings.embedder,
                            k_swept=[int(fit["k"]) for fit in grouping.sweep], original_domains=len(data.domains),
                            regroup_seconds=seconds, embeddings_cached=grouping.cached_embeddings,
                            clustering_seed=seed, k_rule=choice.rule, min_cluster_size=choice.min_cluster_size,
                            collapse=choice.collapse, sweep=grouping.sweep)
    return apply(data, grouping), domains


def _flat_params(settings: RunSettings, strategy: MixingStrategy, info, num_domains: int,
                 domains: DomainsRecord) -> dict:
    params = {f"strategy.{k}": v for k, v in strategy.get_params().items()}
    params.update({f"train.{k}": v for k, v in settings.config.to_dict().items()})
    params.update({f"domains.{k}": v for k, v in dataclasses.asdict(domains).items()
                   if v is not None and k != "names"})
    params.update({"algo": settings.algo, "task": settings.task, "task.version": info.version,
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
