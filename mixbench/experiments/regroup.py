"""`mixbench regroup`: print the k sweep and the cluster summary, save the assignment and a plot,
log the sweep to MLflow."""

from __future__ import annotations

from pathlib import Path

import click

from mixbench.regroup import Regrouping
from mixbench.regroup.describe import describe_clusters
from mixbench.regroup.why_k import why_k
from mixbench.storage.atomic import write_json
from mixbench.task import TaskData


def report(task_name: str, data: TaskData, grouping: Regrouping, *, out_dir: Path, seed: int,
           embedder_name: str, use_mlflow: bool, experiment: str) -> Path:
    from mixbench.regroup.regrouping import every_rule_choice

    rows = describe_clusters(data, grouping)
    choices = every_rule_choice(grouping.sweep, grouping.choice.min_cluster_size)
    _print(grouping, rows, choices, len(data.domains))
    base = Path(out_dir) / task_name / "regroup" / f"{embedder_name}-seed{seed}"
    payload = {
        "task": task_name, "seed": seed, **grouping.describe(), "sweep": grouping.sweep, "rule_choices": choices,
        "clusters": rows, "original_domains": list(data.domains),
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


def _print(grouping: Regrouping, rows: list[dict], choices: dict[str, int | None], original: int) -> None:
    from mixbench import registry

    echo = click.echo
    rule = registry.k_rules.get(grouping.rule)
    echo(f"k rule: {grouping.choice.label} ({rule.summary()} [{rule.source}])")
    # The silhouette and inertia columns as before, and the rule's own curve when it reads another.
    columns = list(dict.fromkeys(["silhouette", "inertia", rule.reads]))
    echo(f"{'k':>4}  {'smallest':>8}  " + "  ".join(f"{c:>17}" for c in columns))
    for r in grouping.sweep:
        mark = "  <- chosen" if r.get("chosen") else ""
        values = "  ".join(f"{_number(r.get(c)):>17}" for c in columns)
        echo(f"{r['k']:>4}  {r['smallest']:>8.0f}  {values}{mark}")
    chosen = next(r["k"] for r in grouping.sweep if r.get("chosen"))
    silhouette = "" if grouping.silhouette is None else f", silhouette {grouping.silhouette:.4f}"
    cached = " (embeddings from cache)" if grouping.cached_embeddings else ""
    emptied = "" if chosen == grouping.k else f" ({chosen - grouping.k} of its {chosen} clusters empty)"
    echo(f"chosen k = {grouping.k} by {grouping.rule}{emptied}{silhouette}, embedder {grouping.embedder}{cached}")
    echo("each rule on this sweep: " + ", ".join(f"{name} {'-' if k is None else k}" for name, k in choices.items()))
    for line in why_k(grouping.sweep, grouping.rule, grouping.k, original):
        echo(line)
    if grouping.seconds:
        echo("time: " + ", ".join(f"{name.replace('_', ' ')} {seconds:.1f} s"
                                  for name, seconds in grouping.seconds.items()))
    echo(f"\n{'cluster':<8} {'train':>6} {'eval':>5} {'eval %':>6}  top terms | largest original domains")
    for r in rows:
        echo(f"{r['cluster']:<8} {r['train']:>6} {r['eval']:>5} {100 * r['eval_share']:>5.1f}%  "
             f"{', '.join(r['top_terms'])} | {'; '.join(r['top_original_domains'])}")


def _number(value) -> str:
    return "-" if value is None else f"{value:.4f}" if abs(value) < 1e4 else f"{value:.1f}"


def _log(task_name, embedder_name, seed, grouping, experiment, artifacts) -> None:
    from mixbench.experiments.tracking import MlflowTracker

    tracker = MlflowTracker(experiment=experiment, run_name=f"regroup-{task_name}-{embedder_name}",
                            tags={"mixbench.kind": "regroup", "mixbench.task": task_name})
    tracker.log_params({"task": task_name, "embedder": grouping.embedder, "seed": seed, "chosen_k": grouping.k,
                        "k_rule": grouping.rule, "min_cluster_size": grouping.choice.min_cluster_size,
                        "collapse": grouping.choice.collapse})
    for r in grouping.sweep:   # every rule's measures, per k
        tracker.log_metrics({name: value for name, value in r.items()
                             if name not in ("k", "chosen") and isinstance(value, (int, float))}, step=r["k"])
    tracker.log_metrics({"chosen_k": grouping.k, **({} if grouping.silhouette is None
                                                    else {"chosen_silhouette": grouping.silhouette})}, step=0)
    for path in artifacts:
        tracker.log_artifact(path)
    tracker.finish("FINISHED")
    if tracker.active:   # tracking that failed has already said so
        click.echo(f"mlflow: run {tracker.run_id} at {tracker.tracking_uri}")
