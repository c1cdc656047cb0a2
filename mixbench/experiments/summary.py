"""The comparison table: one row per group of runs that differ only by their seed, over seeds,
against stratified on the same seeds.

Runs are averaged together only when they ran the same task (and version), the same strategy
with the same hyperparameters, on domains made the same way, with the same training settings:
a folder holding runs of 60 and of 20 steps, or of two tasks whose seeds coincide, gives a row
for each, never one row pooling them. Within a task, the settings most of its runs share are
"the rest"; a row made otherwise says how, in its `settings` column, and is compared only with
stratified runs of its own settings.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixbench.experiments.results import RunResult

BASELINE = "stratified"
UNFINISHED = ("diverged", "failed")   # statuses a table counts per row, beside the seeds


@dataclass(frozen=True, order=True)
class Group:
    """What a run's numbers depend on besides its seed: runs of one Group may be averaged."""

    task: str
    version: str
    algo: str
    domains: str       # original | regroup
    regroup: str       # regrouped domains: how they were made (JSON: the k swept, the embedder's identity,
                       # the k rule and its limits); "" otherwise. Not the k chosen: it may differ by seed.
    params: str        # the strategy's hyperparameters (JSON)
    settings: str      # every training setting but the seed (JSON)

    @classmethod
    def of(cls, r: RunResult) -> Group:
        d = r.domains
        regroup = _canonical({"k": d.k_swept, "embedder": d.embedder, "k rule": d.k_rule,
                              "min cluster size": d.min_cluster_size, "collapse": d.collapse}) \
            if d.method == "regroup" else ""
        settings = {k: v for k, v in r.config.to_dict().items() if k != "seed"}
        return cls(r.task.name, r.task.version, r.strategy.name, r.domains.method, regroup,
                   _canonical(r.strategy.params), _canonical(settings))


def _canonical(values) -> str:
    return json.dumps(values, sort_keys=True, default=str)


def group_notes(results: list[RunResult]) -> dict[Group, str]:
    """For every group of `results`, how it differs from the rest of its task ("" when it does
    not): its training settings against those most of the task's runs share, its hyperparameters
    against those most runs of its strategy share, its regrouping against its strategy's most
    common; e.g. "steps 20 (60 in the rest)"."""
    sizes = Counter(Group.of(r) for r in results)
    usual: dict[tuple, Counter] = defaultdict(Counter)
    for group, n in sizes.items():
        usual[("settings", group.task, group.version)][group.settings] += n
        usual[("params", group.task, group.version, group.algo)][group.params] += n
        usual[("regroup", group.task, group.version, group.algo, group.domains)][group.regroup] += n

    def most_common(counter: Counter) -> str:   # ties: the first in sorted order, the same every time
        top = max(counter.values())
        return min(k for k, v in counter.items() if v == top)

    notes = {}
    for g in sizes:
        parts = [_differences(g.settings, most_common(usual[("settings", g.task, g.version)])),
                 _differences(g.params, most_common(usual[("params", g.task, g.version, g.algo)])),
                 _differences(g.regroup, most_common(usual[("regroup", g.task, g.version, g.algo, g.domains)]),
                              "regroup ")]
        notes[g] = "; ".join(p for p in parts if p)
    return notes


def _differences(mine: str, usual: str, prefix: str = "") -> str:
    if mine == usual:
        return ""
    a, b = (json.loads(x) if x else {} for x in (mine, usual))
    return ", ".join(f"{prefix}{k} {_shown(a.get(k))} ({_shown(b.get(k))} in the rest)"
                     for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


def _shown(value) -> str:
    return "none" if value is None else str(value)


def summarize(results: list[RunResult]) -> pd.DataFrame:
    """One row per Group: final eval loss (by original domains) mean ± std over seeds, steps to
    reach stratified's final loss, overhead in FLOPs and seconds, and the paired difference
    against stratified (same task, same training settings) on the same seeds with a paired
    t-test p-value; and how many seeds diverged or failed (those have no final loss: they are
    counted, not averaged). `task` names the row's task; `settings` how the row was made
    otherwise than the rest of its task ("" for the rest). Rows are ordered by task, strategy,
    domains, the rest's first."""
    from scipy import stats

    groups: dict[Group, dict[int, RunResult]] = defaultdict(dict)
    unfinished = {status: defaultdict(int) for status in UNFINISHED}
    for r in results:
        if r.finished:
            groups[Group.of(r)].setdefault(r.seed, r)
        elif r.status in unfinished:
            unfinished[r.status][Group.of(r)] += 1
    notes = group_notes([r for r in results if r.finished or r.status in unfinished])
    rows = []
    for group in sorted(set(groups).union(*unfinished.values()), key=lambda g: (g.task, g.version, g.algo, g.domains,
                                                                                notes[g] != "", g)):
        algo, domains = group.algo, group.domains
        by_seed = groups.get(group, {})
        counts = {status: unfinished[status][group] for status in UNFINISHED}
        where = {"task": group.task, "settings": notes[group]}
        if not by_seed:   # no seed finished
            rows.append({"algo": algo, "domains": domains, "seeds": 0, "final_loss_mean": math.nan,
                         "final_loss_std": math.nan, "steps_to_stratified_final": math.nan,
                         "overhead_flops_pct": math.nan, "overhead_seconds_pct": math.nan,
                         "diff_vs_stratified": math.nan, "paired_t_p": math.nan, **counts, **where})
            continue
        base = baseline_runs(group, groups)
        seeds = sorted(by_seed)
        finals = np.array([by_seed[s].final_loss for s in seeds], dtype=float)
        paired = [s for s in seeds if s in base]
        diffs = np.array([by_seed[s].final_loss - base[s].final_loss for s in paired], dtype=float)
        p_value = math.nan
        if len(paired) >= 2 and algo != BASELINE and np.any(diffs != diffs[0]):
            p_value = float(stats.ttest_rel([by_seed[s].final_loss for s in paired],
                                            [base[s].final_loss for s in paired]).pvalue)
        reach = [by_seed[s].steps_to_reach(base[s].final_loss) for s in paired]
        overhead = [by_seed[s].overhead for s in seeds]
        rows.append({
            "algo": algo, "domains": domains, "seeds": len(by_seed),
            "final_loss_mean": float(finals.mean()),
            "final_loss_std": float(finals.std(ddof=1)) if finals.size > 1 else 0.0,
            "steps_to_stratified_final": float(np.nanmean(reach)) if reach and not np.all(np.isnan(reach))
            else math.nan,
            "overhead_flops_pct": float(np.mean([o.flops_pct if o else 0.0 for o in overhead])),
            "overhead_seconds_pct": float(np.mean([o.seconds_pct if o else 0.0 for o in overhead])),
            "diff_vs_stratified": float(diffs.mean()) if diffs.size else math.nan,
            "paired_t_p": p_value,
            **counts,
            **_task_metrics([by_seed[s] for s in seeds]),
            **where,
        })
    return pd.DataFrame(rows)


def baseline_runs(group: Group, groups: dict[Group, dict[int, RunResult]]) -> dict[int, RunResult]:
    """Stratified's runs to pair `group` with: same task and version, same training settings; on
    the same domains (regrouped the same way) if there are such, else on the original ones."""
    def found(domains: str, regroup: str) -> dict[int, RunResult]:
        for g, runs in groups.items():
            if (g.algo, g.task, g.version, g.settings, g.domains, g.regroup) == \
                    (BASELINE, group.task, group.version, group.settings, domains, regroup):
                return runs
        return {}

    return found(group.domains, group.regroup) or found("original", "")


def _task_metrics(runs: list[RunResult]) -> dict:
    """Mean and std over seeds of each task metric beyond the loss (image-text: retrieval top-1)."""
    values = defaultdict(list)
    for r in runs:
        for name, value in r.metrics.final_eval_metrics.items():
            values[name].append(value)
    out = {}
    for name, vs in values.items():
        out[f"{name}_mean"] = float(np.mean(vs))
        out[f"{name}_std"] = float(np.std(vs, ddof=1)) if len(vs) > 1 else 0.0
    return out


def metric_names(table: pd.DataFrame) -> list[str]:
    """The task metrics summarised in `table` (columns NAME_mean besides the loss)."""
    return [c[:-5] for c in table.columns if c.endswith("_mean") and c != "final_loss_mean"]


def per_domain_table(results: list[RunResult]) -> pd.DataFrame:
    """Mean final eval loss per ORIGINAL domain over seeds, one column per Group (algo/domains,
    then how it differs from the rest, if it does), so the rows line up whatever domains each
    run trained on."""
    notes = group_notes([r for r in results if r.finished])
    tasks = {(r.task.name, r.task.version) for r in results if r.finished}
    columns = defaultdict(lambda: defaultdict(list))
    for r in results:
        if not r.finished:
            continue
        note = notes[Group.of(r)]
        name = (f"{r.task.name}: " if len(tasks) > 1 else "") + f"{r.strategy.name}/{r.domains.method}" \
            + (f" [{note}]" if note else "")
        for domain, loss in r.metrics.final_reference_eval_losses.items():
            if math.isfinite(loss):
                columns[name][domain].append(loss)
    return pd.DataFrame({c: {d: float(np.mean(v)) for d, v in doms.items()} for c, doms in sorted(columns.items())})


def curve_metrics(results: list[RunResult]) -> list[str]:
    """Task metrics recorded every round that change over training (chance levels do not)."""
    names = {name for r in results for x in r.rounds for name in x.eval_metrics}
    return sorted(n for n in names if not n.endswith("_chance"))
