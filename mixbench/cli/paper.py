"""`mixbench paper`: the R&B paper's experiments on the offline stand-ins, then the report."""

from __future__ import annotations

import sys

import click

from mixbench.cli.exit_codes import PARTLY_FAILED, exit_codes
from mixbench.cli.options import checkpoint_options, config_options, output_options, task_options


def _registered_seeds() -> str:
    """The protocol's seed tiers as the help says them (protocol.py is data: cheap to import)."""
    from mixbench.experiments.paper.protocol import SEED_TIERS

    rows = {"main": "stratified, R&B and the regroup ablation", "sweep": "the k sweep and the unbiased Gram",
            "costly": "Skill-It, Aioli and DGA"}
    return ", ".join(f"{seeds[0]}-{seeds[-1]} for {rows[tier]}" for tier, seeds in SEED_TIERS.items())


@click.command("paper", short_help="Run the paper's protocol on each task and write its report.")
@click.option("--tasks", default=None,
              help="Comma-separated tasks [the stand-ins whose data is here: evals-id (Sup-NatInst), evals-ood "
                   "(Sup-NatInst test), champ (S1-59K), and openclipart, else digits (DataComp)].")
@task_options(default=None)   # --task PATH and its field flags: a data file of your own, beside --tasks
@click.option("--seeds", default=None,
              help="Comma-separated seeds for every row run [each row its pre-registered seeds: "
                   f"{_registered_seeds()}; --quick: 0,1]. Seeds beyond a row's registered ones are exploratory: "
                   "reported apart, never in a verdict.")
@click.option("--quick", is_flag=True,
              help="A smoke version of a few minutes on 2 CPU cores: synthetic and digits, seeds 0,1, 20 steps, "
                   "k in 2,4,8, the tfidf embedder (each can still be set).")
@click.option("--rows", default=None, metavar="ROWS",
              help="Comma-separated rows to run, by key (stratified, rnb, dga, k16, ...) or report section "
                   "(table1, fig3, fig2, image); the baseline always comes along. Earlier runs under the same --out "
                   "and settings stay in the report, e.g. more seeds for the cheap rows [every row].")
@click.option("--param", "params", multiple=True, metavar="ALGO.NAME=VALUE",
              help="A strategy hyperparameter for every task, e.g. --param skillit.graph_fraction=0.025 or "
                   "--param aioli.lp_steps=1 to bound the heavy baselines (repeatable; see `mixbench list`).")
@click.option("--embedder", default=None, help="Embedder for regrouping [minilm; --quick: tfidf].")
@click.option("--report-only", is_flag=True, help="Only rebuild the report from the results already under --out.")
@click.option("--jobs", type=int, default=1, show_default=True, metavar="N",
              help="Run N cells of a row group at a time, as compare --jobs does (each in its own process with "
                   "its share of the CPU's threads).")
@checkpoint_options
@config_options(exclude=("seed",))
@output_options(experiment="mixbench-paper",
                out_help="Cells go to OUT/<grid>/<task>/<algo>/<domains>/seed<N>.json, the record of the run to "
                         "OUT/paper.json, the report to OUT/report/paper.md and paper.html.")
@exit_codes
def paper_cmd(tasks, task, seeds, quick, rows, params, embedder, report_only, jobs, checkpoint_every,
              keep_checkpoints, config, out_dir, use_mlflow, experiment, progress):
    """Run the paper's protocol (Table 1, the Fig. 3 ablation, the Fig. 2 k sweep, the image-text table) on
    each task, resumable like compare, and write the report beside the paper's figures."""
    from mixbench.experiments.paper.report import render
    from mixbench.experiments.paper.runner import run_paper
    from mixbench.experiments.provenance import portable_command
    from mixbench.experiments.settings import TrackingSettings

    failed = []
    if not report_only:
        settings = _settings(tasks, task, seeds, quick, rows, params, embedder, config, out_dir=out_dir,
                             command=portable_command(["mixbench", *sys.argv[1:]], out_dir),
                             tracking=TrackingSettings(enabled=use_mlflow, experiment=experiment), progress=progress,
                             checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints, jobs=jobs)
        failed = run_paper(settings).failed
    md, html = render(out_dir)
    click.echo(f"report: {md}\n        {html}")
    if failed:   # the report shows the rest; a script must still see that some failed
        click.echo(f"{len(failed)} cell(s) failed and are not in the report (rerun to retry them):", err=True)
        for line in failed:
            click.echo(f"  {line}", err=True)
        sys.exit(PARTLY_FAILED)


def _settings(tasks, task, seeds, quick, rows, params, embedder, config, **how):
    """The PaperSettings the options give: the protocol's (--quick: a smaller one), and `how` it runs.
    `task` (--task, a TaskSpec) runs with --tasks, or alone."""
    from mixbench.cli.hyperparameters import parse_param_specs
    from mixbench.cli.lists import parse_list, parse_seeds
    from mixbench.errors import MixbenchError
    from mixbench.experiments.paper import protocol
    from mixbench.experiments.paper.runner import QUICK_BUDGET, PaperSettings, default_tasks
    from mixbench.experiments.settings import check_jobs

    check_jobs(how["jobs"])   # before anything is read or written
    overrides = {k: v for k, v in config.items() if v is not None}
    if quick:
        overrides = {**QUICK_BUDGET, **overrides}
    names = tuple(parse_list(tasks, "tasks")) if tasks is not None else (
        () if task is not None else protocol.QUICK_TASKS if quick else default_tasks())
    if tasks is None and overrides.get("regime", "scratch") == "finetune":   # the base is a text model
        names = tuple(n for n in names if n not in protocol.TASKS or protocol.TASKS[n].modality == "text")
    names += (task.name,) if task is not None and task.name not in names else ()
    if not names:
        raise MixbenchError("no task of the paper's stand-ins has its data here (see `mixbench list`); name one "
                            "with --tasks")
    algos = sorted({row.algo for row in protocol.rows_for(protocol.TASKS["champ"], ood=False, ks=())})
    return PaperSettings(
        tasks=names, seeds=tuple(parse_seeds(seeds)) if seeds is not None else None,
        overrides=overrides, params=parse_param_specs(params, algos),
        embedder=embedder or ("tfidf" if quick else "minilm"),
        ks=protocol.QUICK_K_SWEEP if quick else protocol.K_SWEEP, quick=quick,
        rows=tuple(parse_list(rows, "rows")) if rows is not None else None,
        task_files={task.name: task.file} if task is not None and task.file is not None else {}, **how)
