"""`mixbench compare`: strategies × domains × seeds on one task, resumable, summarised."""

from __future__ import annotations

import sys

import click

from mixbench.cli.exit_codes import PARTLY_FAILED, exit_codes
from mixbench.cli.options import (
    checkpoint_options,
    config_options,
    embedder_option,
    k_choice_options,
    output_options,
    task_option,
)


@click.command("compare", short_help="Run strategies × domains × seeds on one task and compare them.")
@task_option
@click.option("--algos", required=True, help="Comma-separated strategies, e.g. stratified,rnb,dga.")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@click.option("--domains", "domains_specs", default=None,
              help="Comma-separated domain choices, e.g. original,regroup [each strategy's default].")
@click.option("--param", "params", multiple=True, metavar="ALGO.NAME=VALUE",
              help="A strategy hyperparameter, e.g. --param aioli.eta=0.2 (repeatable; see `mixbench list`).")
@click.option("--keep-cells", is_flag=True,
              help="Never replace a finished cell: one that ran with other settings is an error instead of rerun.")
@click.option("--jobs", type=int, default=1, show_default=True, metavar="N",
              help="Run N cells at a time, each in its own process with its share of the CPU's threads (its "
                   "output in seed<N>.log beside its results; one line per finished cell here).")
@checkpoint_options
@embedder_option
@k_choice_options
@config_options(exclude=("seed",))
@output_options(experiment="mixbench-compare",
                out_help="Cells go to OUT/<task>/<algo>/<domains>/seed<N>.json; the summary to OUT/<task>/summary.*")
@exit_codes
def compare_cmd(task, algos, seeds, domains_specs, params, keep_cells, jobs, checkpoint_every, keep_checkpoints,
                embedder, k_choice, config, out_dir, use_mlflow, experiment, progress):
    """Run strategies × domains × seeds on one task (reusing finished cells, an interrupted one going on
    from its checkpoint) and compare them."""
    from mixbench.cli.hyperparameters import parse_param_specs
    from mixbench.cli.lists import parse_list, parse_seeds
    from mixbench.experiments.compare import run_grid
    from mixbench.experiments.settings import GridSettings, TrackingSettings
    from mixbench.experiments.summary import per_domain_table, summarize
    from mixbench.experiments.tables import format_markdown, format_text
    from mixbench.storage.atomic import write_text

    algos = tuple(parse_list(algos, "algos"))
    grid = run_grid(GridSettings(
        task=task.name, task_file=task.file, algos=algos, seeds=tuple(parse_seeds(seeds)),
        domains=tuple(parse_list(domains_specs, "domains")) if domains_specs is not None else None,
        overrides=config, params=parse_param_specs(params, list(algos)), embedder=embedder, k_choice=k_choice,
        out_dir=out_dir,
        tracking=TrackingSettings(enabled=use_mlflow, experiment=experiment), progress=progress,
        keep_cells=keep_cells, checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints, jobs=jobs))
    results = grid.results()
    table = summarize(results)
    click.echo(format_text(table))
    base = out_dir / task.name / "summary"
    write_text(base.with_suffix(".csv"), table.to_csv(index=False))
    write_text(base.parent / "summary_per_domain.csv", per_domain_table(results).to_csv())
    write_text(base.with_suffix(".md"), format_markdown(table) + "\n")
    click.echo(f"summary: {base.with_suffix('.csv')}, {base.with_suffix('.md')}; per domain: "
               f"{base.parent / 'summary_per_domain.csv'}")
    if grid.failed:   # the table holds the other cells; a script must still see that some failed
        click.echo(f"{len(grid.failed)} cell(s) failed and are not in the table (rerun to retry them):", err=True)
        for line in grid.failed:
            click.echo(f"  {line}", err=True)
        sys.exit(PARTLY_FAILED)


@click.command("compare-cell", hidden=True)
@click.argument("spec")
@exit_codes
def compare_cell_cmd(spec):
    """One cell of `compare --jobs N`, in its own process (SPEC: parallel_cells.CellSpec's JSON)."""
    import torch

    from mixbench.engine.orphans import end_with_parent
    from mixbench.experiments.compare import CellSettings, run_cell
    from mixbench.experiments.parallel_cells import CellSpec

    cell = CellSpec.from_json(spec)
    end_with_parent(cell.parent)   # a compare killed outright leaves no cell training on
    torch.set_num_threads(cell.threads)   # its share of the cores (OMP_NUM_THREADS says the same)
    run_cell(cell.settings, CellSettings(**cell.reuse), cell.keep, wait=True)
