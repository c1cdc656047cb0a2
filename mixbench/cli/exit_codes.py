"""How a command ends, in one place: the library returns results and raises typed exceptions;
here they become exit codes, and a bad input one `error:` line on stderr, never a traceback.

    0    done
    1    done, but part of it failed: cells of a grid, theory checks, a repro difference
    2    bad input (MixbenchError): one `error:` line
    3    the run diverged (its loss stopped being finite; its results say at which step)
    130  interrupted (Ctrl-C, SIGTERM, SIGHUP, however often and wherever they arrive, in any
         command): what was done is saved, as a shell reports SIGINT

`command_line` runs the whole command so: click's own handling would turn an interrupt outside a
command's code into "Aborted!" and 1, and Python hands signals back to their default actions while
it shuts down, so a repeated SIGTERM then would end the process as 143.
"""

from __future__ import annotations

import functools
import signal
import sys

import click

from mixbench.errors import MixbenchError
from mixbench.experiments.outcomes import Interrupted, RunDiverged

PARTLY_FAILED = 1
BAD_INPUT = 2
DIVERGED = 3
INTERRUPTED = 130


def exit_codes(fn):
    """Decorates a command: what it raises ends the process with the code above."""

    @functools.wraps(fn)
    def command(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MixbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(BAD_INPUT)
        except RunDiverged:   # the run said so, and where its partial results went
            sys.exit(DIVERGED)
        except Interrupted:   # the run, grid or protocol said what it kept
            exit_interrupted()
        except KeyboardInterrupt:   # a command with nothing to keep (list, report, ...), or caught nowhere below
            exit_interrupted("interrupted")

    return command


def command_line(cli: click.Command, args: list[str] | None = None) -> None:
    """Run `cli` as this process's command and exit with its code: click's usage errors as click
    shows them (2), and an interrupt anywhere (a command's code, click's parsing, the shutdown)
    as 130, never click's "Aborted!" and 1."""
    try:
        code = cli.main(args, standalone_mode=False)
    except click.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            exit_interrupted("interrupted")
        click.echo("Aborted!", err=True)   # end of input at a prompt
        sys.exit(PARTLY_FAILED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        exit_interrupted("interrupted")
    sys.exit(code if isinstance(code, int) else 0)


def exit_interrupted(message: str | None = None) -> None:
    """Exit 130. From here on SIGTERM and SIGHUP are ignored: the command has saved what it had, and
    Python restores their default action while it shuts down, which would end the process as 143
    or 129 instead (SIGINT's default would end it as 130 all the same)."""
    if message:
        click.echo(message, err=True)
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, signal.SIG_IGN)
    sys.exit(INTERRUPTED)
