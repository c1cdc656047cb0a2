"""`mixbench regroup`: look at a task's clusters before training on them."""

from __future__ import annotations

import click

from mixbench.cli.exit_codes import exit_codes
from mixbench.cli.options import embedder_option, k_choice_options, output_options, task_option
from mixbench.config import check_seed
from mixbench.errors import MixbenchError


@click.command("regroup", short_help="Regroup a task into semantic domains: embed, k-means, pick k.")
@task_option
@click.option("--k", "k_spec", default="2:64", show_default=True,
              help="k values to sweep: START:STOP[:STEP], or one k to fix it.")
@embedder_option
@k_choice_options
@click.option("--sample", type=int, default=None,
              help="Fit k-means on a seeded sample of N training examples (all are still assigned).")
@click.option("--seed", type=int, default=0, show_default=True)
@output_options(experiment="mixbench-regroup",
                out_help="The assignment goes to OUT/<task>/regroup/<embedder>-seed<N>.json (+ .png).")
@exit_codes
def regroup_cmd(task, k_spec, embedder, k_choice, sample, seed, out_dir, use_mlflow, experiment, progress):
    """Regroup a task into semantic domains: embed, k-means over a k range, let a k rule pick k
    (the paper's best silhouette unless --k-rule names another)."""
    from mixbench import registry
    from mixbench.experiments.regroup import report
    from mixbench.regroup import regroup
    from mixbench.regroup.clustering import parse_k
    from mixbench.storage.atomic import check_writable

    check_seed(seed)
    try:
        ks = parse_k(k_spec)
    except ValueError as exc:
        raise MixbenchError(str(exc)) from None
    task_obj = task.create()
    embedder_obj = registry.embedders.create(embedder)
    check_writable(out_dir / task.name / "regroup")
    data = task_obj.load()
    grouping = regroup(data, task_obj.info(), embedder_obj, ks, seed=seed, sample=sample, choice=k_choice,
                       progress=progress)
    report(task.name, data, grouping, out_dir=out_dir, seed=seed, embedder_name=embedder, use_mlflow=use_mlflow,
           experiment=experiment)
