"""`mixbench rule-study TASK=OUT ...`: which k rule picks a k that trains well, from paper runs."""

from __future__ import annotations

from pathlib import Path

import click

from mixbench.cli.exit_codes import exit_codes


@click.command("rule-study", short_help="Compare the k rules' choices against the paper runs' k sweep.")
@click.argument("runs", nargs=-1, required=True, metavar="TASK=OUT...")
@click.option("--to", "to", type=click.Path(path_type=Path), default=Path("rule_study"), show_default=True,
              help="Where rule_study.md and rule_study.csv go.")
@exit_codes
def rule_study_cmd(runs, to):
    """For each TASK=OUT (a `mixbench paper` OUT folder holding TASK's Fig. 2 sweep and R&B cells),
    every registered k rule's chosen k, its regret against the best swept k, the Spearman
    correlation of its score with loss, and the default rule chosen by leave-one-task-out."""
    from mixbench.errors import MixbenchError
    from mixbench.experiments.paper import rule_study, rule_study_report
    from mixbench.registry import k_rules

    sweeps = []
    for spec in runs:
        task, sep, out = spec.partition("=")
        if not sep or not task or not out:
            raise MixbenchError(f"each run is TASK=OUT (e.g. champ=runs/paper-champ), got {spec!r}")
        sweeps.append(rule_study.load_task(Path(out), task))
    rules = {name: k_rules.create(name) for name in k_rules.names()}
    md = rule_study_report.write(sweeps, rules, to, list(runs))
    click.echo(f"rule study: {md}\n            {md.with_suffix('.csv')}")
