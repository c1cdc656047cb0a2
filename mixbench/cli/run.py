"""`mixbench run`: train once with one strategy on one task (data-parallel with --nproc N, or
when torchrun starts it)."""

from __future__ import annotations

import sys

import click

from mixbench.cli.exit_codes import exit_codes
from mixbench.cli.options import (
    checkpoint_options,
    config_options,
    embedder_option,
    k_choice_options,
    output_options,
    task_option,
)
from mixbench.errors import MixbenchError


@click.command("run", short_help="Train once with one strategy on one task.",
               context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
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
                      "and with torchrun's rendezvous options spans several machines (docs/data-parallel.md).")
@click.option("--algo", required=True, help="Strategy name (see `mixbench list`).")
@task_option
@click.option("--domains", "domains_spec", default=None,
              help="original, or regroup[:K] (K a number or START:STOP) [the strategy's default: "
                   "regroup for rnb, original for the baselines].")
@embedder_option
@k_choice_options
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
@exit_codes
def run_cmd(ctx, algo, task, domains_spec, embedder, k_choice, config, out_dir, use_mlflow, experiment, progress,
            resume, checkpoint_every, keep_checkpoints, nproc):
    """Train once with one strategy on one task and report loss, mixture and overhead."""
    from mixbench import registry
    from mixbench.cli.hyperparameters import parse_hyperparameters
    from mixbench.cli.launch import launch
    from mixbench.engine.distributed import DataParallel, check_gpus, launched_world_size
    from mixbench.experiments.checkpoints import NEVER, REQUIRED
    from mixbench.experiments.outcomes import RunInterrupted
    from mixbench.experiments.run import run
    from mixbench.experiments.settings import RunSettings, TrackingSettings

    if nproc < 1:
        raise MixbenchError(f"--nproc must be at least 1, got {nproc}")
    if nproc > 1 and launched_world_size() > 1:
        raise MixbenchError("--nproc starts the processes itself: under torchrun leave it out")
    settings = RunSettings.resolve(
        task=task.name, task_file=task.file, algo=algo,
        params=parse_hyperparameters(algo, registry.strategies.get(algo), ctx.args),
        overrides=config, domains=domains_spec, embedder=embedder, k_choice=k_choice, out_dir=out_dir,
        tracking=TrackingSettings(enabled=use_mlflow, experiment=experiment), progress=progress,
        resume=REQUIRED if resume else NEVER, checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints)
    if nproc > 1:   # the same command in N processes; what they cannot share is refused here, before they start
        DataParallel(rank=0, world_size=nproc, local_rank=0).check(settings.create_task().info().modality,
                                                                   settings.config.batch_size)
        check_gpus(settings.config.device, nproc)
        sys.exit(launch(nproc, _without_nproc(sys.argv[1:])))
    try:
        result = run(settings)
    except RunInterrupted as stopped:   # what it did is saved: shown as a finished run's is
        _print_summary(stopped.result)
        raise
    _print_summary(result)


def _print_summary(result) -> None:
    """The run's summary on stdout, from the process that saved it, once it has losses to show
    (a run stopped before its first evaluation has none: a line said where its record went)."""
    from mixbench.experiments.run_summary import print_summary

    if result.saved_to is not None and result.metrics.initial_eval_losses:
        print_summary(result, result.saved_to.path, result.saved_to.mlflow)


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
