"""How a command ends, in one place: the library returns results and raises typed exceptions;
here they become exit codes, and a bad input one `error:` line on stderr, never a traceback.

    0    done
    1    done, but part of it failed: cells of a grid, theory checks, a repro difference
    2    bad input (MixbenchError): one `error:` line
    3    the run diverged (its loss stopped being finite; its results say at which step)
    130  interrupted (Ctrl-C, SIGTERM, SIGHUP): what was done is saved, as a shell reports SIGINT
"""

from __future__ import annotations

import functools
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
            sys.exit(INTERRUPTED)

    return command
