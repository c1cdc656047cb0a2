"""How a command ends on bad input: one `error:` line on stderr and exit code 2, no traceback."""

from __future__ import annotations

import functools
import sys

import click

from mixbench.errors import MixbenchError

EXIT_USAGE = 2


def user_errors(fn):
    """A MixbenchError (bad input, missing data) becomes one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MixbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)

    return wrapper
