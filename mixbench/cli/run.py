"""`mixbench run`: train once with one strategy on one task."""

from __future__ import annotations

import sys

import click

from mixbench.cli.errors import user_errors
from mixbench.cli.options import config_options, embedder_option, output_options, task_option
from mixbench.errors import MixbenchError


@click.command("run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
               epilog="Strategy hyperparameters are passed as --NAME VALUE (e.g. --lam 3 for rnb); "
                      "`mixbench list` shows each strategy's.")
@click.option("--algo", required=True, help="Strategy name (see `mixbench list`).")
@task_option
@click.option("--domains", "domains_spec", default=None,
              help="original, or regroup[:K] (K a number or START:STOP) [the strategy's default: "
                   "regroup for rnb, original for the baselines].")
@embedder_option
@config_options()
@output_options(experiment="mixbench", out_help="Results go to OUT/<task>/<algo>/<original|regroup>/seed<N>.json.")
@click.pass_context
@user_errors
def run_cmd(ctx, algo, task, domains_spec, embedder, config, out_dir, use_mlflow, experiment, progress):
    """Train once with one strategy on one task and report loss, mixture and overhead."""
    from mixbench import registry
    from mixbench.cli.hyperparameters import parse_hyperparameters
    from mixbench.experiments.run import RunRequest, execute
    from mixbench.regroup import DomainSpec

    strategy_cls = registry.strategies.get(algo)
    domains = DomainSpec.parse(domains_spec or strategy_cls.default_domains)
    embedder_obj = registry.embedders.create(embedder) if domains.method == "regroup" else None
    task_obj = registry.tasks.create(task)
    strategy = strategy_cls(**parse_hyperparameters(algo, strategy_cls, ctx.args))
    try:
        strategy.check_params()
    except ValueError as exc:
        raise MixbenchError(str(exc)) from None
    request = RunRequest(algo=algo, strategy=strategy, task_name=task, task=task_obj,
                         config=task_obj.budget.override(**config), out_dir=out_dir, use_mlflow=use_mlflow,
                         experiment=experiment, progress=progress, domains=domains, embedder_name=embedder,
                         embedder=embedder_obj)
    sys.exit(execute(request))
