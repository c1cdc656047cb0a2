"""The `mixbench` command line: one module per command. Heavy imports (torch, mlflow) happen
inside the commands, so `mixbench --help` and bad input answer at once."""

from __future__ import annotations

import logging
import sys
import warnings

import click

from mixbench.cli.compare import compare_cmd
from mixbench.cli.listing import list_cmd
from mixbench.cli.regroup import regroup_cmd
from mixbench.cli.report import report_cmd
from mixbench.cli.run import run_cmd


def _setup_logging() -> None:
    class TqdmHandler(logging.Handler):  # log lines must not tear the progress bar
        def emit(self, record):
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)

    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    # Task loaders report every skipped file at INFO: only their warnings reach the terminal.
    for name, level in (("mixbench", logging.INFO), ("algorithms", logging.INFO), ("tasks", logging.WARNING)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mixbench")
def cli():
    """mixbench: compare data-mixing strategies (R&B and baselines) on one shared trainer."""
    _setup_logging()


for command in (list_cmd, run_cmd, compare_cmd, report_cmd, regroup_cmd):
    cli.add_command(command)


def _register_theory() -> None:
    # The theory checks live in their own package (theory/); their command joins the CLI here.
    from theory.cli import theory_cmd

    cli.add_command(theory_cmd)


_register_theory()


def main() -> None:
    cli()
