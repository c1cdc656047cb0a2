"""`mixbench run`: train once with one strategy on one task (data-parallel with --nproc N, or
when torchrun starts it)."""

from __future__ import annotations

import sys

import click

from mixbench.cli.errors import user_errors
from mixbench.cli.options import checkpoint_options, config_options, embedder_option, output_options, task_option
from mixbench.errors import MixbenchError


@click.command("run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
               epilog="Strategy hyperparameters are passed as --NAME VALUE (e.g. --lam 3 for rnb); "
                      "`mixbench list` shows each strategy's.\n\n"
                      "Checkpoints: the run's state is saved beside its results as "
                      "OUT/<task>/<algo>/<domains>/seed<N>.ckpt at every round end (and every --checkpoint-every "
                      "steps, and on Ctrl-C or SIGTERM); after a crash, a kill or an interrupt, the same command "
                      "with --resume continues from it and ends with the results an uninterrupted run would have. "
                      "A checkpoint made with other settings (task, strategy, hyperparameters, training "
                      "settings, domains, number of processes) is refused.\n\n"
                      "Data parallel: --nproc N trains one model in N processes on this machine, started through "
                      "torch.distributed.run; `torchrun --nproc-per-node N -m mixbench run ...` does the same, "
                      "and with torchrun's rendezvous options spans several machines (see the README).")
@click.option("--algo", required=True, help="Strategy name (see `mixbench list`).")
@task_option
@click.option("--domains", "domains_spec", default=None,
              help="original, or regroup[:K] (K a number or START:STOP) [the strategy's default: "
                   "regroup for rnb, original for the baselines].")
@embedder_option
@config_options()
@output_options(experiment="mixbench", out_help="Results go to OUT/<task>/<algo>/<original|regroup>/seed<N>.json.")
@click.option("--resume", is_flag=True,
              help="Continue this run (same options) from its last checkpoint, seed<N>.ckpt beside its results.")
@checkpoint_options
@click.option("--nproc", type=int, default=1, show_default=True, metavar="N",
              help="Train data-parallel in N processes on this machine (gloo on CPU, NCCL on CUDA: one GPU each), "
                   "started through torch.distributed.run; the batch size is the global batch and must split "
                   "evenly over them.")
@click.pass_context
@user_errors
def run_cmd(ctx, algo, task, domains_spec, embedder, config, out_dir, use_mlflow, experiment, progress, resume,
            checkpoint_every, keep_checkpoints, nproc):
    """Train once with one strategy on one task and report loss, mixture and overhead."""
    from mixbench import registry
    from mixbench.cli.hyperparameters import parse_hyperparameters
    from mixbench.engine.distributed import DataParallel, check_gpus, launch, launched_world_size
    from mixbench.experiments.checkpoints import NEVER, REQUIRED
    from mixbench.experiments.run import RunRequest, execute
    from mixbench.regroup import DomainSpec

    if nproc < 1:
        raise MixbenchError(f"--nproc must be at least 1, got {nproc}")
    if nproc > 1 and launched_world_size() > 1:
        raise MixbenchError("--nproc starts the processes itself: under torchrun leave it out")
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
                         embedder=embedder_obj, resume=REQUIRED if resume else NEVER,
                         checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints)
    if nproc > 1:   # the same command in N processes; what they cannot share is refused here, before they start
        DataParallel(rank=0, world_size=nproc, local_rank=0).check(task_obj.info().modality,
                                                                   request.config.batch_size)
        check_gpus(request.config.device, nproc)
        sys.exit(launch(nproc, _without_nproc(sys.argv[1:])))
    sys.exit(execute(request))


def _without_nproc(argv: list[str]) -> list[str]:
    """This command's arguments (`run ...`) as each process is started with: without --nproc."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out
