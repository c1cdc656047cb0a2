"""One `mixbench run`: load the task, train, save the results JSON, mirror it to MLflow, summarise.

Whatever happens during training (finish, Ctrl-C, a crash) the results JSON is written with
its status and everything recorded so far, and the MLflow run is closed with a matching status.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from mixbench.domains import DomainSpec
from mixbench.embedder import Embedder
from mixbench.errors import MixbenchError
from mixbench.evaluation import EvalReference, select_eval_subset
from mixbench.results import _now, build_result, result_path, write_json
from mixbench.strategy import MixingStrategy
from mixbench.task import Task

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130


@dataclass
class RunRequest:
    algo: str
    strategy: MixingStrategy
    task_name: str
    task: Task
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
    overrides: dict = field(default_factory=dict)


def execute(req: RunRequest) -> int:
    """Runs the request; returns the process exit code. Raises MixbenchError for bad input."""
    from mixbench.trainer import RunHistory, TrainConfig, train

    cfg = TrainConfig.from_budget(req.task.budget, **req.overrides)
    cfg.validate()
    path = result_path(req.out_dir, req.task_name, req.algo, req.domains.label, cfg.seed)
    check_writable(path.parent)
    info = req.task.info()
    data = req.task.load()
    # The eval examples scored are drawn by the task's ORIGINAL domains, before any regrouping,
    # so runs on original and regrouped domains are scored on the very same examples.
    original_eval_domains = [e.domain for e in data.eval]
    eval_rows = select_eval_subset(np.array(original_eval_domains), cfg.eval_per_domain)
    reference = EvalReference.of(original_eval_domains)   # and scored by them, too
    domains_info = {"method": "original"}
    if req.domains.method == "regroup":
        data, domains_info = _regroup(req, data, info)
    data.require_eval_in_train()

    tracker = _start_tracker(req, cfg) if req.use_mlflow else None
    history, status, error, started_at = RunHistory(), "failed", None, _now()
    try:
        if tracker is not None:
            tracker.log_params(_flat_params(req, cfg, info, len(data.domains), domains_info))
        train(data, req.strategy, cfg, history=history, progress=req.progress, eval_rows=eval_rows,
              reference=reference, on_step=_step_logger(tracker), on_round=_round_logger(tracker, data.domains))
        status = "finished"
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted by the user"
    except MixbenchError as exc:
        error = str(exc)
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        # A run refused before its first evaluation (a hyperparameter that does not fit the task,
        # say) has nothing to keep: no results file, and its MLflow run is marked failed.
        refused = status == "failed" and not history.initial_eval_losses
        result = build_result(algo=req.algo, strategy=req.strategy, task_name=req.task_name, task_info=info,
                              cfg=cfg, history=history, status=status, error=error, started_at=started_at,
                              domains_info=domains_info)
        if not refused:
            write_json(path, result)
        if tracker is not None:
            if refused:
                tracker.finish("FAILED")
            else:
                _finish_tracker(tracker, result, path, history, status)
        if status != "finished" and not refused:
            click.echo(f"{status}: partial results ({len(history.train_losses)} steps) saved to {path}", err=True)
    if not req.quiet:
        _print_summary(result, path, tracker)
    return 0 if status == "finished" else EXIT_INTERRUPTED


def check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise MixbenchError(f"cannot write results to {directory}: {exc.strerror or exc}") from None


def _start_tracker(req: RunRequest, cfg):
    from mixbench.tracking import MlflowTracker

    # mlflow sets its own logger to INFO on import; its database-migration chatter is noise here.
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    return MlflowTracker(experiment=req.experiment, tracking_uri=req.tracking_uri,
                         run_name=f"{req.algo}-{req.task_name}-{req.domains.label}-seed{cfg.seed}",
                         tags={"mixbench.algo": req.algo, "mixbench.task": req.task_name,
                               **({"mlflow.parentRunId": req.parent_run_id} if req.parent_run_id else {})})


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
    return apply(data, grouping), {**grouping.describe(), "embedder_name": req.embedder_name,
                                   "k_swept": list(req.domains.ks), "original_domains": len(data.domains),
                                   "regroup_seconds": seconds, "embeddings_cached": grouping.cached_embeddings}


def _flat_params(req, cfg, info, num_domains, domains_info) -> dict:
    params = {f"strategy.{k}": v for k, v in req.strategy.get_params().items()}
    params.update({f"train.{k}": v for k, v in vars(cfg).items()})
    params.update({f"domains.{k}": v for k, v in domains_info.items()})
    params.update({"algo": req.algo, "task": req.task_name, "task.version": info.version,
                   "task.num_domains": num_domains})
    return params


def _step_logger(tracker):
    if tracker is None:
        return None
    return lambda step, loss: tracker.log_metric("train_loss", loss, step)


def _round_logger(tracker, domains):
    if tracker is None:
        return None
    from mixbench.tracking import metric_key

    def log_round(record):
        metrics = {"mean_eval_loss": record.mean_eval_loss, "round": record.round_index,
                   "reference_eval_loss": record.reference_eval_loss,
                   **{f"eval.{k}": v for k, v in record.eval_metrics.items()}}
        for i, d in enumerate(domains):
            metrics[metric_key("eval_loss", i, d)] = record.eval_losses[i]
            metrics[metric_key("p", i, d)] = record.mixture[i]
        tracker.log_metrics(metrics, step=record.step)
        tracker.flush()

    return log_round


def _finish_tracker(tracker, result, path: Path, history, status: str) -> None:
    from mixbench.plots import plot_mixture

    overhead = result["overhead"] or {}
    tracker.log_metrics({f"overhead.{k}": v for k, v in overhead.items() if isinstance(v, (int, float))},
                        step=len(history.train_losses))
    tracker.log_artifact(path)
    if history.rounds:
        png = plot_mixture(result["mixture"]["per_round"], list(history.domains),
                           path.with_suffix(".mixture.png"),
                           title=f"{result['strategy']['name']} on {result['task']['name']}: mixture per round")
        tracker.log_artifact(png)
    tracker.finish({"finished": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED"))


def _print_summary(result: dict, path: Path, tracker) -> None:
    m = result["metrics"]
    domains = result["domains"]["names"]
    final_p = result["mixture"]["final"] or [float("nan")] * len(domains)
    cfg = result["config"]
    echo = click.echo
    echo(f"\n{result['strategy']['name']} on {result['task']['name']} "
         f"({len(domains)} domains), seed {result['seed']}, {m['steps_done']}/{cfg['steps']} steps "
         f"on {result['environment']['device']}, {m['num_params'] / 1e6:.2f}M params, "
         f"{m['train_seconds']:.0f} s")
    echo(f"mean eval loss (q-weighted): initial {_f(m['initial_mean_eval_loss'])} -> final "
         f"{_f(m['final_mean_eval_loss'])}")
    if result["domains"].get("method") != "original":
        echo(f"by the task's {len(m['final_reference_eval_losses'])} original domains (what compare uses): initial "
             f"{_f(m['initial_reference_eval_loss'])} -> final {_f(m['final_reference_eval_loss'])}")
    for line in _metric_lines(m.get("initial_eval_metrics") or {}, m.get("final_eval_metrics") or {}):
        echo(line)
    final = m["final_eval_losses"]
    per_domain = m.get("final_domain_eval_metrics") or {}
    rows = sorted((i for i, d in enumerate(domains) if _finite(final[d])), key=lambda i: final[domains[i]])
    shown = rows if len(rows) <= 16 else rows[:6] + [None] + rows[-6:]
    width = max(6, min(32, max(len(d) for d in domains)))
    echo(f"  {'domain':<{width}}  initial    final  p_final" + "".join(f"  {name:>8}" for name in per_domain))
    for i in shown:
        if i is None:
            echo(f"  ... {len(rows) - 12} more in the results JSON")
            continue
        d = domains[i]
        echo(f"  {d[:width]:<{width}}  {_f(m['initial_eval_losses'][d]):>7}  {_f(final[d]):>7}  {final_p[i]:.4f}"
             + "".join(f"  {_f(values[d]):>{max(8, len(name))}}" for name, values in per_domain.items()))
    if len(rows) < len(domains):
        q = result["eval_proportions"]
        no_eval = sum(1 for i, d in enumerate(domains) if not _finite(final[d]) and q[i] == 0)
        unscored = len(domains) - len(rows) - no_eval
        if no_eval:
            echo(f"  ({no_eval} domains have no eval examples: q = 0, trained on but not scored)")
        if unscored:
            echo(f"  ({unscored} domains have none of the scored eval rows, drawn by original domains: "
                 "q renormalised over the rest)")
    p = [x for x in final_p if _finite(x)]
    if p:
        top = max(range(len(final_p)), key=lambda i: final_p[i])
        echo(f"final mixture: max p {max(p):.4f} ({domains[top]}), min p {min(p):.4f}, "
             f"uniform would be {1 / len(p):.4f}")
    o = result["overhead"]
    if o:
        echo(f"overhead: {o['flops_pct']:.4f} % of training FLOPs "
             f"(Gram only, as the paper counts: {o['paper_flops_pct']:.4f} %); "
             f"{o['seconds_pct']:.2f} % of training seconds "
             f"({o['overhead_seconds']:.2f} s of {o['train_seconds']:.1f} s)")
        if o.get("paper_formula_flops") is not None:
            ratio = o["measured_over_formula"]
            echo(f"paper App. D formula for this run: {o['paper_formula_flops']:.3g} FLOPs; measured "
                 f"{o['overhead_flops']:.3g}" + (f" ({ratio:.3g}× the formula)" if ratio is not None else ""))
    echo(f"results: {path}")
    if tracker is not None:
        echo(f"mlflow: run {tracker.run_id} in experiment {tracker.experiment_id} at {tracker.tracking_uri}")
        echo(f"        view with: mlflow ui --backend-store-uri {tracker.tracking_uri}")


def _metric_lines(initial: dict, final: dict) -> list[str]:
    """'name: initial a -> final b' per task metric; a constant one (a chance level) once."""
    lines = []
    for name, value in final.items():
        before = initial.get(name)
        if before is not None and before != value:
            lines.append(f"{name}: initial {_f(before)} -> final {_f(value)}")
        else:
            lines.append(f"{name}: {_f(value)}")
    return lines


def _f(x) -> str:
    return f"{x:.4f}" if _finite(x) else "nan"


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


