"""The k-rule study written out: rule_study.md (the tables and the recommendation) and
rule_study.csv (one line per task, rule and seed), from rule_study's numbers."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from mixbench.experiments.paper import rule_study
from mixbench.experiments.paper.rule_study import RuleRegret, TaskSweep


def write(sweeps: list[TaskSweep], rules: dict, to: Path, sources: list[str]) -> Path:
    """Compute the study over `sweeps` with `rules` and write it into `to`; returns the .md path."""
    by_task = {s.task: rule_study.regrets(s, rules) for s in sweeps}
    correlations = {s.task: rule_study.score_correlations(s, rules) for s in sweeps}
    to.mkdir(parents=True, exist_ok=True)
    _write_csv(by_task, to / "rule_study.csv")
    md = to / "rule_study.md"
    md.write_text(_markdown(sweeps, rules, by_task, correlations, sources))
    return md


def _write_csv(by_task: dict[str, list[RuleRegret]], path: Path) -> None:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["task", "rule", "seed", "chosen_k", "evaluated_k", "best_k", "regret"])
        for rows in by_task.values():
            for r in rows:
                for (seed, k), regret in zip(r.chosen.items(), r.regrets):
                    out.writerow([r.task, r.rule, seed, k, r.evaluated[seed], r.best_k, f"{regret:.6g}"])


def _markdown(sweeps, rules, by_task, correlations, sources) -> str:
    lines = ["# Which k rule picks a k that trains well", "",
             "Made by `mixbench rule-study` from the `mixbench paper` runs below; how it is computed: "
             "`mixbench/experiments/paper/rule_study.py`. Per seed, each rule chooses k from the whole "
             "Regroup curve (2..64) of that seed's clustering; its loss is read at the nearest k of the Fig. 2 "
             "sweep (log scale), and the regret is that loss minus the seed's loss at the task's best swept k "
             "(lowest mean). Intervals: 95 % t over seeds. Relative regret is the mean regret ÷ the best k's loss.",
             "", "Runs read: " + ", ".join(f"`{s}`" for s in sources), ""]
    for sweep in sweeps:
        rows = by_task[sweep.task]
        lines += [f"## {sweep.task}", "",
                  f"Swept k {', '.join(map(str, sweep.ks))}; seeds {', '.join(map(str, sweep.seeds))}; best swept k = "
                  f"{rows[0].best_k} (mean loss {rows[0].best_loss:.4f}).", "",
                  "| rule | source | chosen k per seed | read at k | mean regret (95 % interval) | relative regret "
                  "| Spearman ρ of its score with loss (exact p) |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows:
            low, high = r.interval()
            rho, p = correlations[sweep.task][r.rule]
            interval = "" if math.isnan(low) else f" ({low:+.4f}, {high:+.4f})"
            corr = "—" if math.isnan(rho) else f"{rho:+.2f} (p = {p:.3g}, score: {rules[r.rule].reads})"
            lines.append(f"| {r.rule} | {rules[r.rule].source} | {', '.join(map(str, r.chosen.values()))} "
                         f"| {', '.join(map(str, r.evaluated.values()))} | {r.mean:+.4f}{interval} "
                         f"| {r.relative:+.2%} | {corr} |")
        lines.append("")
    lines += _selection(by_task)
    return "\n".join(lines) + "\n"


def _selection(by_task: dict[str, list[RuleRegret]]) -> list[str]:
    lines = ["## The default rule, by leave-one-task-out", ""]
    if len(by_task) < 2:
        return lines + ["One task only: nothing to leave out, no recommendation.", ""]
    names = [r.rule for r in next(iter(by_task.values()))]
    lines += ["| rule | " + " | ".join(by_task) + " | mean relative regret |",
              "|---|" + "---|" * len(by_task) + "---|"]
    for name in names:
        values = [next(r for r in rows if r.rule == name).relative for rows in by_task.values()]
        cells = " | ".join(f"{v:+.2%}" for v in values)
        lines.append(f"| {name} | {cells} | {sum(values) / len(values):+.2%} |")
    lines += ["", "| held-out task | rule chosen on the other tasks | its relative regret on the held-out task |",
              "|---|---|---|"]
    held = rule_study.leave_one_task_out(by_task)
    for task, (rule, regret) in held.items():
        lines.append(f"| {task} | {rule} | {regret:+.2%} |")
    lines += ["", f"Recommended (lowest mean relative regret over every task): **{rule_study.recommended(by_task)}**; "
              f"mean held-out regret of choosing this way: {sum(r for _, r in held.values()) / len(held):+.2%}.", ""]
    return lines
