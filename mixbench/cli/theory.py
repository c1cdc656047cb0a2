"""`mixbench theory`: run every check of the paper's derivation (mixbench.theory), print a table
(or JSON), exit 1 if any check fails."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from mixbench.cli.exit_codes import PARTLY_FAILED, exit_codes
from mixbench.config import check_seed

if TYPE_CHECKING:
    from mixbench.theory.check import CheckResult


def format_table(results: list[CheckResult]) -> str:
    rows = [("check", "claim", "instances", "passed", "worst margin", "seconds")]
    rows += [(r.name, r.claim, str(r.instances), "yes" if r.passed else "NO", f"{r.worst_margin:.3g}",
              f"{r.seconds:.1f}") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("\nworst margin: the smallest measured margin, in each check's own units; `--json` gives its "
                 "pass_if and the numbers behind it. Values near ±1e-15 are bounds attained exactly (ties).")
    failed = [r.name for r in results if not r.passed]
    lines.append(f"{len(results) - len(failed)}/{len(results)} checks passed"
                 + (f"; failed: {', '.join(failed)}" if failed else ""))
    return "\n".join(lines)


@click.command("theory", short_help="Check the R&B paper's derivation and lemmas on synthetic problems.")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per check instead of the table.")
@click.option("--quick", is_flag=True, help="Small instance counts (seconds, what the tests run).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every check's random instances.")
@exit_codes
def theory_cmd(as_json: bool, quick: bool, seed: int):
    """Check the R&B paper's derivation and lemmas on synthetic convex problems.

    Each claim (closed form of Balance, its λ limits, Lemma 2, Lemma 5, convergence against
    stratified/static, regrouping) runs on random instances with a measured margin; the command
    exits non-zero if any check fails.
    """
    from mixbench.theory import check

    check_seed(seed)   # a MixbenchError: one line, as every command's
    results = []
    for name in check.CHECKS:
        results.append(check.run_check(name, quick=quick, seed=seed))
        if not as_json:
            click.echo(f"  {results[-1].name}: {'passed' if results[-1].passed else 'FAILED'} "
                       f"({results[-1].seconds:.1f} s)", err=True)
    if as_json:
        click.echo(json.dumps([r.to_record() for r in results], indent=2, ensure_ascii=False))
    else:
        click.echo(format_table(results))
    if not all(r.passed for r in results):
        sys.exit(PARTLY_FAILED)
