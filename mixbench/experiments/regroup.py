"""`mixbench regroup`: print the k sweep and the cluster summary, save the assignment and a plot,
log the sweep to MLflow."""

from __future__ import annotations

from pathlib import Path

import click

from mixbench.regroup import Regrouping
from mixbench.regroup.describe import describe_clusters
from mixbench.storage.atomic import write_json
from mixbench.task import TaskData


def report(task_name: str, data: TaskData, grouping: Regrouping, *, out_dir: Path, seed: int,
           embedder_name: str, use_mlflow: bool, experiment: str) -> Path:
    rows = describe_clusters(data, grouping)
    _print(grouping, rows)
    base = Path(out_dir) / task_name / "regroup" / f"{embedder_name}-seed{seed}"
    payload = {
        "task": task_name, "seed": seed, **grouping.describe(), "sweep": grouping.sweep, "clusters": rows,
        "original_domains": list(data.domains),
        "train_labels": grouping.train_labels.tolist(), "eval_labels": grouping.eval_labels.tolist(),
    }
    write_json(base.with_suffix(".json"), payload)
    from mixbench.experiments.plots import plot_k_sweep

    png = plot_k_sweep(grouping.sweep, grouping.k, base.with_suffix(".png"),
                       title=f"regroup {task_name} with {embedder_name}: k sweep")
    click.echo(f"assignment: {base.with_suffix('.json')}\nplot: {png}")
    if use_mlflow:
        _log(task_name, embedder_name, seed, grouping, experiment, [base.with_suffix(".json"), png])
    return base.with_suffix(".json")


def _print(grouping: Regrouping, rows: list[dict]) -> None:
    echo = click.echo
    echo(f"{'k':>4}  {'silhouette':>10}  {'inertia':>12}")
    for r in grouping.sweep:
        mark = "  <- chosen" if r["k"] == grouping.k else ""
        echo(f"{r['k']:>4}  {r['silhouette']:>10.4f}  {r['inertia']:>12.1f}{mark}")
    cached = " (embeddings from cache)" if grouping.cached_embeddings else ""
    echo(f"chosen k = {grouping.k}, silhouette {grouping.silhouette:.4f}, embedder {grouping.embedder}{cached}")
    top_k = max(r["k"] for r in grouping.sweep)
    if len(grouping.sweep) > 1 and grouping.k >= top_k - 2:
        echo(f"note: the best k is at the top of the range swept (up to {top_k}); a wider --k may score higher")
    echo(f"\n{'cluster':<8} {'train':>6} {'eval':>5} {'eval %':>6}  top terms | largest original domains")
    for r in rows:
        echo(f"{r['cluster']:<8} {r['train']:>6} {r['eval']:>5} {100 * r['eval_share']:>5.1f}%  "
             f"{', '.join(r['top_terms'])} | {'; '.join(r['top_original_domains'])}")


def _log(task_name, embedder_name, seed, grouping, experiment, artifacts) -> None:
    from mixbench.experiments.tracking import MlflowTracker

    tracker = MlflowTracker(experiment=experiment, run_name=f"regroup-{task_name}-{embedder_name}",
                            tags={"mixbench.kind": "regroup", "mixbench.task": task_name})
    tracker.log_params({"task": task_name, "embedder": grouping.embedder, "seed": seed, "chosen_k": grouping.k})
    for r in grouping.sweep:
        tracker.log_metrics({"silhouette": r["silhouette"], "inertia": r["inertia"]}, step=r["k"])
    tracker.log_metrics({"chosen_k": grouping.k, "chosen_silhouette": grouping.silhouette}, step=0)
    for path in artifacts:
        tracker.log_artifact(path)
    tracker.finish("FINISHED")
    if tracker.active:   # tracking that failed has already said so
        click.echo(f"mlflow: run {tracker.run_id} at {tracker.tracking_uri}")
