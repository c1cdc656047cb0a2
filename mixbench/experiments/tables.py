"""The comparison table as text (the terminal) and as Markdown (summary.md, the report), from
one list of columns, so the two never disagree."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from mixbench.experiments.summary import UNFINISHED, metric_names


@dataclass(frozen=True)
class Column:
    text: str                          # header in the terminal
    markdown: str                      # header in Markdown
    width: int                         # terminal width; negative: left-aligned
    cell: Callable[[dict], str]


def _num(x, fmt: str) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _mean_std(name: str) -> Callable[[dict], str]:
    def cell(row: dict) -> str:
        mean, std = row.get(f"{name}_mean"), row.get(f"{name}_std")
        return "—" if mean is None or math.isnan(mean) else f"{mean:.4f} ± {std:.4f}"
    return cell


COLUMNS = [
    Column("algo", "algo", -11, lambda r: r["algo"]),
    Column("domains", "domains", -9, lambda r: r["domains"]),
    Column("seeds", "seeds", 5, lambda r: str(r["seeds"])),
    Column("final eval loss", "final eval loss (mean ± std)", 17, _mean_std("final_loss")),
    Column("steps to strat.", "steps to stratified's final", 15, lambda r: _num(r["steps_to_stratified_final"], ".0f")),
    Column("FLOPs +%", "FLOP overhead %", 10, lambda r: _num(r["overhead_flops_pct"], ".4g")),
    Column("time +%", "time overhead %", 8, lambda r: _num(r["overhead_seconds_pct"], ".3g")),
    Column("Δ vs strat.", "Δ vs stratified", 11, lambda r: _num(r["diff_vs_stratified"], "+.4f")),
    Column("p (paired t)", "p (paired t)", 12, lambda r: _num(r["paired_t_p"], ".3g")),
]


def _count(status: str) -> Column:
    return Column(status, f"seeds {status}", 8, lambda r: str(r.get(status, 0)))


TASK = Column("task", "task", -11, lambda r: r["task"])
# How a row was made otherwise than the rest of its task (summary.group_notes): free text, last.
SETTINGS = Column("other settings", "made otherwise than the rest", -1, lambda r: r.get("settings") or "")


def columns_of(table: pd.DataFrame) -> list[Column]:
    """The fixed columns, one per task metric in `table`, and the seeds that diverged or failed
    (only when some did); the task first when the table holds several, and how a row's settings
    differ from the rest's last, when one's do."""
    counts = [_count(s) for s in UNFINISHED if s in table and table[s].sum() > 0]
    several_tasks = "task" in table and table["task"].nunique() > 1
    other_settings = "settings" in table and bool((table["settings"].fillna("") != "").any())
    return (([TASK] if several_tasks else []) + COLUMNS
            + [Column(name, f"{name} (mean ± std)", 17, _mean_std(name)) for name in metric_names(table)]
            + counts + ([SETTINGS] if other_settings else []))


def format_text(table: pd.DataFrame) -> str:
    columns = columns_of(table)
    lead = columns.index(COLUMNS[2]) + 1   # (task,) algo, domains, seeds: set apart from the numbers

    def line(cells: list[str]) -> str:
        padded = [f"{c:<{-col.width}}" if col.width < 0 else f"{c:>{col.width}}" for c, col in zip(cells, columns)]
        return (" ".join(padded[:lead]) + "  " + "  ".join(padded[lead:])).rstrip()

    return "\n".join([line([c.text for c in columns])]
                     + [line([c.cell(row) for c in columns]) for row in table.to_dict("records")])


def format_markdown(table: pd.DataFrame) -> str:
    columns = columns_of(table)
    lines = ["| " + " | ".join(c.markdown for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(c.cell(row) for c in columns) + " |" for row in table.to_dict("records")]
    return "\n".join(lines)
