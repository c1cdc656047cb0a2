"""`mixbench repro check|update GOLDEN`: the fixed-seed reproduction check (tox -e repro) against
a golden file, or the golden file written anew after an intended change to training."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mixbench.cli.exit_codes import PARTLY_FAILED, exit_codes

SHOWN_DIFFERENCES = 20


@click.command("repro", hidden=True)
@click.argument("action", type=click.Choice(["check", "update"]))
@click.argument("golden", type=click.Path(path_type=Path))
@exit_codes
def repro_cmd(action, golden):
    """Rerun the fixed-seed comparison (synthetic task, stratified, static and rnb, seed 0) and
    compare it with GOLDEN (check: exit 1 on any difference), or write GOLDEN from it (update)."""
    from mixbench.experiments import repro

    if action == "update":
        repro.write_golden(golden, repro.measure())
        click.echo(f"wrote {golden}")
        return
    expected = repro.read_golden(golden)   # before the rerun: an unreadable file is said at once
    if expected["environment"]["torch"] != repro.environment()["torch"]:
        click.echo(f"note: golden made with torch {expected['environment']['torch']}, "
                   f"running {repro.environment()['torch']}")
    problems = repro.compare(repro.measure(), expected)
    for line in problems[:SHOWN_DIFFERENCES]:
        click.echo(f"MISMATCH {line}")
    click.echo(f"repro: {'FAILED' if problems else 'ok'} ({len(problems)} differences; rtol {repro.RTOL}, "
               f"atol {repro.ATOL}; golden from {expected['environment']['platform']})")
    if problems:
        sys.exit(PARTLY_FAILED)
