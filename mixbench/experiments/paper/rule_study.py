"""The k-rule study (issue 30): which of Regroup's k rules picks a k that trains well.

It reads what `mixbench paper` already ran, nothing more: per task, the Fig. 2 sweep (stratified
on Regroup's clusters at each fixed k of protocol.K_SWEEP, per seed) and the k sweep that every
R&B cell's Regroup recorded (every rule's measures at every k of 2..64, on the clustering of that
cell's seed: the clustering seed is the run seed, so seed s of a Fig. 2 row trains on exactly the
clustering that seed s's curve measured at that k).

For each rule and seed: the k the rule chooses from the whole curve (2..64), the swept k nearest
to it on a log scale (a loss is measured at the swept k only), and the regret there, the seed's
loss at that k minus its loss at the task's best swept k (the lowest mean over seeds), paired by
seed, with a t interval over the seeds. Relative regrets (÷ the best k's loss) are what carries
across tasks. Each rule's score is also set against the loss over the swept k (Spearman, exact).

The default rule is chosen by leave-one-task-out: for each task, the rule with the lowest mean
relative regret on the other tasks, scored on the held-out one; the rule with the lowest mean
relative regret over every task is the recommendation, and the held-out regrets say how well that
way of choosing carries to a task it did not see.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixbench.errors import MixbenchError
from mixbench.experiments.paper.significance import spearman_exact
from mixbench.experiments.results import RunResult

SEEDS_CSV = Path("report") / "paper_seeds.csv"


@dataclass(frozen=True)
class TaskSweep:
    """One task's measurements: final loss per (swept k, seed), and each seed's Regroup curve."""

    task: str
    losses: dict[int, dict[int, float]]     # k -> seed -> final eval loss
    curves: dict[int, list[dict]]           # seed -> the sweep rows of that seed's Regroup

    @property
    def ks(self) -> list[int]:
        return sorted(self.losses)

    @property
    def seeds(self) -> list[int]:
        """The seeds with a loss at every swept k and a curve."""
        common = set(self.curves)
        for by_seed in self.losses.values():
            common &= set(by_seed)
        return sorted(common)

    def best_k(self) -> int:
        return min(self.ks, key=lambda k: (np.mean([self.losses[k][s] for s in self.seeds]), k))


@dataclass(frozen=True)
class RuleRegret:
    task: str
    rule: str
    chosen: dict[int, int]        # seed -> k chosen from the whole curve
    evaluated: dict[int, int]     # seed -> the swept k where its loss is read
    regrets: list[float]          # per seed, loss units
    best_k: int
    best_loss: float              # mean over seeds at the best swept k

    @property
    def mean(self) -> float:
        return float(np.mean(self.regrets))

    @property
    def relative(self) -> float:
        return self.mean / self.best_loss

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """t interval of the mean regret over seeds (NaN below two seeds; a point when they agree)."""
        r = np.asarray(self.regrets, dtype=float)
        if r.size < 2:
            return math.nan, math.nan
        from scipy import stats

        half = stats.t.ppf(0.5 + level / 2, r.size - 1) * r.std(ddof=1) / math.sqrt(r.size)
        return float(r.mean() - half), float(r.mean() + half)


def nearest_swept(k: int, swept: list[int]) -> int:
    """The swept k nearest to k on a log scale (k-means' k matters by ratio), ties to the smaller."""
    return min(swept, key=lambda s: (abs(math.log(s) - math.log(k)), s))


def load_task(out: Path, task: str) -> TaskSweep:
    """A task's sweep from a `mixbench paper` OUT folder: the per-seed CSV of its report for the
    losses, the R&B cells' results JSON for the curves. Only confirmatory (registered) seeds."""
    seeds_csv = out / SEEDS_CSV
    if not seeds_csv.is_file():
        raise MixbenchError(f"{seeds_csv} is missing: run `mixbench paper --out {out}` (or --report-only) first")
    losses: dict[int, dict[int, float]] = {}
    with seeds_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["task"] != task or row["status"] != "finished" or row["confirmatory"] != "True":
                continue
            if row["row"].startswith("k") and row["row"][1:].isdigit():
                losses.setdefault(int(row["row"][1:]), {})[int(row["seed"])] = float(row["final_loss"])
    curves = {}
    for path in sorted((out / "main" / task / "rnb" / "regroup").glob("seed*.json")):
        result = RunResult.load(path)
        sweep = result.domains.sweep if result.domains else None
        if result.finished and sweep:
            curves[result.seed] = list(sweep)
    if not losses or not curves:
        raise MixbenchError(f"{out} holds no finished Fig. 2 sweep and R&B cells for task {task!r}")
    return TaskSweep(task, losses, curves)


def regrets(sweep: TaskSweep, rules: dict) -> list[RuleRegret]:
    """Each rule's regret on one task, over the seeds that have everything."""
    seeds, swept, best = sweep.seeds, sweep.ks, sweep.best_k()
    if len(seeds) < 1:
        raise MixbenchError(f"task {sweep.task!r}: no seed has both a Regroup curve and every swept k")
    best_loss = float(np.mean([sweep.losses[best][s] for s in seeds]))
    out = []
    for name, rule in rules.items():
        chosen = {s: int(rule.choose(sweep.curves[s])) for s in seeds}
        evaluated = {s: nearest_swept(k, swept) for s, k in chosen.items()}
        out.append(RuleRegret(sweep.task, name, chosen, evaluated,
                              [sweep.losses[evaluated[s]][s] - sweep.losses[best][s] for s in seeds],
                              best, best_loss))
    return out


def score_correlations(sweep: TaskSweep, rules: dict) -> dict[str, tuple[float, float]]:
    """Spearman's ρ (exact p) between each rule's score and the mean loss over the swept k, the
    score averaged over the seeds' curves. A rule that reads another's score shares its ρ."""
    out = {}
    for name, rule in rules.items():
        scores, losses = [], []
        for k in sweep.ks:
            values = [row.get(rule.reads) for s in sweep.seeds for row in sweep.curves[s] if row["k"] == k]
            values = [v for v in values if v is not None]
            if values:
                scores.append(float(np.mean(values)))
                losses.append(float(np.mean([sweep.losses[k][s] for s in sweep.seeds])))
        out[name] = spearman_exact(scores, losses)
    return out


def leave_one_task_out(by_task: dict[str, list[RuleRegret]]) -> dict[str, tuple[str, float]]:
    """For each task: the rule with the lowest mean relative regret on the other tasks, and that
    rule's relative regret on this one (ties to the rule name first in order, for a stable choice)."""
    out = {}
    for held in by_task:
        others = [t for t in by_task if t != held]
        if not others:
            continue
        names = [r.rule for r in by_task[held]]
        pick = min(names, key=lambda n: (np.mean([_of(by_task[t], n).relative for t in others]), n))
        out[held] = (pick, _of(by_task[held], pick).relative)
    return out


def recommended(by_task: dict[str, list[RuleRegret]]) -> str:
    names = [r.rule for r in next(iter(by_task.values()))]
    return min(names, key=lambda n: (np.mean([_of(rs, n).relative for rs in by_task.values()]), n))


def _of(rows: list[RuleRegret], name: str) -> RuleRegret:
    return next(r for r in rows if r.rule == name)
