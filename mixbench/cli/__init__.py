"""The `mixbench` command line: one module per command. Heavy imports (torch, mlflow) happen
inside the commands, so `mixbench --help` and bad input answer at once."""

from __future__ import annotations

import logging
import signal
import sys
import warnings

import click

from mixbench.cli.compare import compare_cell_cmd, compare_cmd
from mixbench.cli.exit_codes import command_line
from mixbench.cli.listing import list_cmd
from mixbench.cli.paper import paper_cmd
from mixbench.cli.pretrain import pretrain_cmd
from mixbench.cli.regroup import regroup_cmd
from mixbench.cli.report import report_cmd
from mixbench.cli.repro import repro_cmd
from mixbench.cli.rule_study import rule_study_cmd
from mixbench.cli.run import run_cmd
from mixbench.cli.theory import theory_cmd


def _setup_logging() -> None:
    class TqdmHandler(logging.Handler):  # log lines must not tear the progress bar
        def emit(self, record):
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)

    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("mixbench")   # the built-in strategies, tasks and embedders log below it
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    # Task loaders report every skipped file at INFO: only their warnings reach the terminal.
    logging.getLogger("mixbench.tasks").setLevel(logging.WARNING)
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mixbench")
def cli():
    """mixbench: compare data-mixing strategies (R&B and baselines) on one shared trainer."""
    _setup_logging()


for command in (list_cmd, run_cmd, compare_cmd, compare_cell_cmd, report_cmd, regroup_cmd, paper_cmd, theory_cmd,
                repro_cmd, rule_study_cmd, pretrain_cmd):
    cli.add_command(command)


def _interrupt_on_termination() -> None:
    """SIGTERM (`kill`, `timeout`, schedulers) and SIGHUP (a closed terminal) end a command the way
    Ctrl-C does, as a KeyboardInterrupt: every command already handles that by saving what it has
    (status "interrupted") and closing its MLflow runs as KILLED. A repeat of either signal is
    ignored so it cannot cut that saving short (SIGKILL still ends the process at once); a signal
    the caller ignores (`nohup`) stays ignored."""

    received = []

    def interrupt(signum, frame):
        # Stays installed and does nothing on repeats: swapping in SIG_IGN here would make Python
        # raise for a repeat that arrived before this ran ("Signal 15 ignored due to race condition").
        if not received:
            received.append(signum)
            raise KeyboardInterrupt(signal.Signals(signum).name)

    for name in _TERMINATION_SIGNALS:
        number = getattr(signal, name)
        if signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, interrupt)


_TERMINATION_SIGNALS = [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]   # no SIGHUP on Windows


def main() -> None:
    _interrupt_on_termination()
    command_line(cli)
