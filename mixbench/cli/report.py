"""`mixbench report DIR`: Markdown + HTML with plots from the results under DIR."""

from __future__ import annotations

from pathlib import Path

import click

from mixbench.cli.exit_codes import exit_codes


@click.command("report", short_help="Render a Markdown + HTML report with plots from results.")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Where report.md, report.html and the PNGs go [DIRECTORY/report].")
@click.option("--task", default=None, metavar="NAME|PATH",
              help="Only this task's results, DIRECTORY/<task> (a data file's: as run and compare name it).")
@exit_codes
def report_cmd(directory, out_dir, task):
    """Render a Markdown + HTML report with plots from the results under DIRECTORY."""
    from mixbench.experiments.report import render
    from mixbench.experiments.task_spec import TaskSpec

    if task is not None:
        directory = directory / TaskSpec.name_of(task)
    md, html = render(directory, out_dir or directory / "report")
    click.echo(f"report: {md}\n        {html}")
