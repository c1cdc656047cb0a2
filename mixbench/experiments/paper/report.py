"""The paper report: OUT/report/paper.md and paper.html with their PNGs, and paper_seeds.csv.

It opens with each task's pre-registration (every row's seeds, the tests, α, the correction, the
margin, and the registration's digest) and the confirmatory verdicts: one per claim and task,
decided on Holm-adjusted p-values over every confirmatory test of the report, on the registered
seeds only. Once a task's registered cells have all ended, its verdicts are kept in paper.json as
first looked at and printed as they were. Seeds run beyond the registration go to a labelled
exploratory section that counts the looks. Then, for every row, mixbench's mean ± std over seeds
and its paired comparison with stratified (difference, bootstrap interval of the relative change,
t and sign-flip p), beside the paper's figure for the matching row as a relative change against
stratified (absolute losses are not comparable across models and data); the seeds a paired test
would need to see the paper's effect; and how the run was made (commands, git state, settings,
versions, machine). `build` takes the results themselves, so it can be checked on made-up numbers.
"""

from __future__ import annotations

import functools
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixbench.experiments.paper import protocol
from mixbench.experiments.paper.plots import (
    plot_differences,
    plot_k_sweep,
    plot_mixture_heatmap,
    plot_relative_changes,
)
from mixbench.experiments.paper.protocol import CLAIMS, FIG2, FIG3, IMAGE, TABLE1
from mixbench.experiments.paper.runner import (
    TaskPlan,
    invocations,
    load_rows,
    read_manifest,
    report_seeds,
    write_manifest,
)
from mixbench.experiments.paper.significance import spearman_exact
from mixbench.experiments.paper.stats import RETRIEVAL, RowStats, paired, row_stats, sweep_on_common_seeds
from mixbench.experiments.paper.verdicts import NOT_MEASURED, Verdict, decide, estimator_comparison, findings
from mixbench.experiments.results import RunResult, now
from mixbench.storage.atomic import check_writable, write_text

TITLE = "R&B (arXiv 2505.00358) reproduced with mixbench"


@dataclass
class TaskResults:
    plan: TaskPlan
    runs: dict[str, list[RunResult]]     # row key → its results at its registered seeds (the confirmatory ones)
    extra: dict[str, list[RunResult]] = field(default_factory=dict)   # at seeds beyond them (exploratory)

    @property
    def every_seed(self) -> dict[str, list[RunResult]]:
        return {key: sorted(self.runs.get(key, []) + self.extra.get(key, []), key=lambda r: r.seed)
                for key in dict.fromkeys([*self.runs, *self.extra])}


def render(out_dir: Path, report_dir: Path | None = None) -> tuple[Path, Path]:
    """The report of the run recorded in OUT/paper.json, from the results under OUT. A task whose
    registered cells have all ended has its confirmatory verdicts kept in paper.json, as first
    looked at: later renders print those."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    ks = tuple(manifest["settings"]["ks"])
    tasks, left_out = [], []
    for values in manifest["tasks"]:
        plan = TaskPlan.from_dict(values, ks)
        name = plan.task.task
        loaded, stale = _made_by(load_rows(out_dir, plan, functools.partial(report_seeds, manifest, name)),
                                 manifest.get("embedder_identity"))
        registered = {r["key"]: set(r["seeds"]) for r in manifest["registration"][name]["rows"]}
        tasks.append(TaskResults(plan, {k: [r for r in rs if r.seed in registered[k]] for k, rs in loaded.items()},
                                 {k: [r for r in rs if r.seed not in registered[k]] for k, rs in loaded.items()}))
        left_out += [f"{name} {line}" for line in stale]
    manifest = {**manifest, "left_out": left_out}
    looked = look(manifest, tasks)
    if looked != manifest.get("confirmatory", {}):   # a first look: kept, never changed after
        write_manifest(out_dir, {**read_manifest(out_dir), "confirmatory": looked})
    return build({**manifest, "confirmatory": looked}, tasks, report_dir or out_dir / "report")


def look(manifest: dict, tasks: list[TaskResults]) -> dict:
    """The confirmatory verdicts of every task whose registered cells have all ended, decided as
    one family with the others' tests: those already looked at as they were, the rest as now."""
    kept = dict(manifest.get("confirmatory", {}))
    if all(t.plan.task.task in kept for t in tasks) or not all(_complete(manifest, t) for t in tasks):
        return kept   # one family per report: the look waits for every task's registered cells
    verdicts = _confirmatory(tasks)
    when = now()
    for t in tasks:
        name = t.plan.task.task
        if name not in kept:
            kept[name] = {"looked_at": when, "digest": manifest["registration"][name]["digest"],
                          "verdicts": [v.to_dict() for v in verdicts if v.task == name]}
    return kept


def _complete(manifest: dict, task: TaskResults) -> bool:
    """Every registered cell of the task has ended (finished, diverged or failed with a record),
    or a command that ran it has finished."""
    name = task.plan.task.task
    for row in manifest["registration"][name]["rows"]:
        ended = {r.seed for r in task.runs.get(row["key"], []) if r.status in ("finished", "diverged", "failed")}
        tried = {s for entry in invocations(manifest) if entry.get("finished_at")
                 and row["key"] in entry.get("selected", {}).get(name, [])
                 for s in (entry["seeds"] if entry.get("seeds") is not None else row["seeds"])}
        if not set(row["seeds"]) <= ended | tried:
            return False
    return True


def _confirmatory(tasks: list[TaskResults]) -> list[Verdict]:
    return decide([f for t in tasks for f in _findings(t, t.runs)])


def _findings(task: TaskResults, runs: dict[str, list[RunResult]]):
    plan = task.plan
    stats = row_stats(runs, plan.rows, plan.baseline, plan.task.paper_dataset)
    return findings(plan.task.task, stats, runs, plan.rows, plan.baseline, plan.ood, plan.task.modality)


def _made_by(runs: dict[str, list[RunResult]], identity: str | None) -> tuple[dict[str, list[RunResult]], list[str]]:
    """The runs whose domains this run's embedder made (original domains always), and a line for
    each regrouped cell left under OUT by another embedder: one report never mixes two groupings."""
    if identity is None:   # a manifest from before identities were recorded
        return runs, []
    kept, stale = {}, []
    for key, results in runs.items():
        kept[key] = []
        for r in results:
            if r.domains.method != "regroup" or r.domains.embedder == identity:
                kept[key].append(r)
            else:
                stale.append(f"{key} seed {r.seed} ({r.domains.embedder})")
    return kept, stale


def build(manifest: dict, tasks: list[TaskResults], out: Path) -> tuple[Path, Path]:
    """The report of `tasks`; the confirmatory verdicts are the ones `manifest["confirmatory"]` keeps
    (a task without them is pending its look)."""
    out = Path(out)
    md_path, html_path = out / "paper.md", out / "paper.html"
    check_writable(out, md_path, html_path, out / SEEDS_CSV)
    analysed = [(t, row_stats(t.runs, t.plan.rows, t.plan.baseline, t.plan.task.paper_dataset)) for t in tasks]
    lines = [f"# {TITLE}", "",
             "Made by `mixbench paper`. The paper trained GPT-Neo-125M, Qwen2-0.5B and CLIP on its own data; "
             "mixbench trains small models on offline stand-ins, so absolute losses are not comparable and every "
             "comparison here is against stratified on the same seeds, as a difference and as a relative change.", ""]
    lines += _registration_section(manifest, tasks)
    lines += _verdict_section(manifest, tasks)
    lines += _exploratory_section(manifest, tasks)
    lines += _run_section(manifest)
    for task, stats in analysed:
        lines += _task_section(task, stats, out)
    lines += _power_section(analysed)
    write_text(md_path, "\n".join(lines) + "\n")
    write_text(html_path, to_html("\n".join(lines)))
    write_text(out / SEEDS_CSV, per_seed_table(manifest, tasks).to_csv(index=False))
    return md_path, html_path


SEEDS_CSV = "paper_seeds.csv"


# -- sections ------------------------------------------------------------------------------------------

def _registration_section(manifest: dict, tasks: list[TaskResults]) -> list[str]:
    lines = ["## Pre-registration", "",
             f"Fixed before the runs, for every task alike: α = {protocol.ALPHA} family-wise over every confirmatory "
             f"test of this report, corrected by {protocol.CORRECTION}; the tests: "
             + "; ".join(protocol.TESTS) + f"; bootstrap intervals from {protocol.BOOTSTRAP_RESAMPLES:,} resamples of "
             "the seeds (in pairs). Each row's seeds below; a seed run beyond them is exploratory and never enters "
             "a confirmatory verdict. Each seed clusters with its own k-means seed (the run's), so the spread over "
             "seeds includes the clustering's.", "",
             "| task | registration digest | row | seeds |", "|---|---|---|---|"]
    for t in tasks:
        registration = manifest["registration"][t.plan.task.task]
        for row in registration["rows"]:
            lines.append(f"| {t.plan.task.task} | `{registration['digest']}` | {row['key']} | "
                         f"{_seed_list(row['seeds'])} |")
    return lines + [""]


def _verdict_section(manifest: dict, tasks: list[TaskResults]) -> list[str]:
    datasets = {t.plan.task.task: t.plan.task.paper_dataset for t in tasks}
    titles = {c.key: c.title for c in CLAIMS}
    lines = ["## Verdicts (confirmatory)", "",
             f"On the registered seeds only, one look: *reproduced* when the paper's direction is significant after "
             f"{protocol.CORRECTION} adjustment over every test below (α = {protocol.ALPHA}), *not reproduced* when "
             "the opposite one is (for the overhead claim also when R&B's overhead exceeds 1/100 of the cheapest "
             "adaptive baseline's), else *not significant at these seeds*. Each line gives the raw and the adjusted "
             "p; the verdict is on the adjusted one.", ""]
    looked = manifest.get("confirmatory", {})
    for t in tasks:
        name = t.plan.task.task
        if name not in looked:
            lines += [f"- {_task_name(name, datasets)}: **pending** — its registered cells have not all ended; the "
                      "verdicts are decided once, when they have.", ""]
            continue
        entry = looked[name]
        lines.append(f"Looked at {entry['looked_at']} (registration `{entry['digest']}`):")
        lines.append("")
        for values in entry["verdicts"]:
            v = Verdict.from_dict(values)
            outcome = v.outcome if v.outcome == NOT_MEASURED else f"**{v.outcome}**"
            lines.append(f"- **{titles.get(v.claim, v.claim)}** — {_task_name(v.task, datasets)}: {outcome}. "
                         f"{v.measured}")
        lines.append("")
    lines += ["What the paper reports for each claim:", ""]
    lines += [f"- **{c.title}**: {c.paper}" for c in CLAIMS]
    return lines + [""]


def _exploratory_section(manifest: dict, tasks: list[TaskResults]) -> list[str]:
    """Every seed run, registered or not, where some row has seeds beyond its registration: the
    same tests in a family of their own, labelled, with the looks counted."""
    extended = [t for t in tasks if any(t.extra.values())]
    if not extended:
        return []
    looks = sum(1 for entry in invocations(manifest) if entry.get("exploratory"))
    datasets = {t.plan.task.task: t.plan.task.paper_dataset for t in tasks}
    titles = {c.key: c.title for c in CLAIMS}
    verdicts = decide([f for t in extended for f in _findings(t, t.every_seed)])
    lines = ["## Exploratory: seeds added beyond the registration", "",
             f"Not confirmatory. These rows were run at seeds beyond their registered ones, by {looks} command(s) "
             "after the protocol was fixed (each a look at the results); below, every seed each row has, registered "
             "or not, under the same tests, Holm-adjusted within this section. Seeds added after looking bias "
             "these p-values downward (optional stopping): read them as leads, not as verdicts.", ""]
    for t in extended:
        added = {k: sorted(r.seed for r in rs) for k, rs in t.extra.items() if rs}
        lines.append(f"- {_task_name(t.plan.task.task, datasets)}: seeds added: "
                     + "; ".join(f"{k} {_seed_list(v)}" for k, v in added.items()) + ".")
    lines.append("")
    for v in verdicts:
        outcome = v.outcome if v.outcome == NOT_MEASURED else f"*{v.outcome}*"
        lines.append(f"- {titles.get(v.claim, v.claim)} — {_task_name(v.task, datasets)}: {outcome}. {v.measured}")
    return lines + [""]


def _run_section(manifest: dict) -> list[str]:
    settings = manifest["settings"]
    quick = " (--quick: a smoke version)" if settings.get("quick") else ""
    commands = invocations(manifest)
    lines = ["## How this was run", "",
             f"{len(commands)} command(s) under the same protocol, in this order (a command with --rows ran only "
             "those rows and the baseline; one with --seeds ran those seeds; `OUT` is the output folder):", "",
             "```", *(entry["command"] for entry in commands), "```", ""]
    lines += [f"- {entry['command'].split(' --out')[0]}: started {entry.get('started_at', '?')}, "
              f"{_ended(entry)}; git {_git(entry.get('git'))}"
              + ("; ran exploratory seeds" if entry.get("exploratory") else "") for entry in commands]
    tasks = [t["task"] for t in manifest["tasks"]]
    lines += ["", f"- Tasks {', '.join(tasks)}; embedder `{settings['embedder']}`{_identity(manifest)}{quick}.",
              f"- Fixed before the run and the same for every task (nothing tuned per task): the k sweep "
              f"{', '.join(map(str, settings['ks']))}; Skill-It's graph runs split {protocol.SKILLIT_GRAPH_SHARE:g} of "
              "the run's steps over the m skills (App. D; at least one step each); Aioli updates its mixture at most "
              f"{protocol.AIOLI_ROUNDS} times (Table 6), fewer where a round would not hold more than twice its "
              "LearnParams steps; every other setting is the strategy's default and the task's own budget below.",
              f"- Strategy settings per row: {_params(manifest)}.",
              f"- Budget overrides for every task: {settings['overrides'] or 'none'}.",
              "", "| task | " + " | ".join(_BUDGET) + " |", "|---|" + "---|" * len(_BUDGET)]
    lines += [f"| {task} | " + " | ".join(str(cfg.get(k, "—")) for k in _BUDGET) + " |"
              for task, cfg in manifest["budgets"].items()]
    data = "; ".join(f"{task}: {d['source']} ({d['version']}, {d['license']})"
                     for task, d in manifest.get("data", {}).items())
    versions = ", ".join(f"{k} {v}" for k, v in manifest["versions"].items())
    machine = ", ".join(f"{k} {v}" for k, v in manifest["machine"].items())
    lines += ["", f"- Data: {data or 'not recorded'}.", f"- Versions: {versions}.", f"- Machine: {machine}."]
    if manifest.get("failed_cells"):
        lines.append(f"- Cells that failed: {'; '.join(manifest['failed_cells'])}.")
    if manifest.get("left_out"):
        lines.append(f"- Left out: {len(manifest['left_out'])} regrouped cell(s) under --out made with another "
                     "embedder than this run's (rerun the command to replace them): "
                     f"{'; '.join(manifest['left_out'])}.")
    lines += [f"- Per-seed values of every row: `{SEEDS_CSV}` beside this report.",
              "- The paper's figures: arXiv 2505.00358v1, read in a text copy of its PDF (the search tool's pages "
              "corpus returned only the opening of arxiv.org/html/2505.00358v1); where each comes from is beside "
              "it. The issue's \"Table 2 image-text setting\" is Table 3 in that text (Table 2 there is S1-59K).", ""]
    return lines


def _ended(entry: dict) -> str:
    if entry.get("finished_at"):
        return f"finished {entry['finished_at']}"
    if entry.get("interrupted_at"):
        return f"interrupted {entry['interrupted_at']}"
    return "not finished"


def _git(state: dict | None) -> str:
    if not state:
        return "not recorded"
    dirty = {True: ", with uncommitted changes", False: "", "unknown": ", dirty state unknown"}.get(state["dirty"], "")
    return f"{state['hash'][:12]}{dirty}"


def _seed_list(seeds) -> str:
    seeds = list(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]} ({len(seeds)})"
    return ", ".join(map(str, seeds)) + f" ({len(seeds)})"


def per_seed_table(manifest: dict, tasks: list[TaskResults]):
    """Every row and seed of the report: what it ended as, its final reference eval loss, overhead,
    domains and clustering seed, and whether the seed was registered (confirmatory)."""
    import pandas as pd

    records = []
    for t in tasks:
        for key, results in t.every_seed.items():
            registered = {r.seed for r in t.runs.get(key, [])}
            for r in results:
                overhead = r.overhead
                records.append({
                    "task": t.plan.task.task, "row": key, "algo": r.strategy.name, "seed": r.seed,
                    "confirmatory": r.seed in registered, "status": r.status, "final_loss": r.final_loss,
                    "retrieval_top1": r.metrics.final_eval_metrics.get(RETRIEVAL, math.nan),
                    "overhead_flops_pct": overhead.flops_pct if overhead is not None else math.nan,
                    "overhead_seconds_pct": overhead.seconds_pct if overhead is not None else math.nan,
                    "domains": r.domains.method, "k": r.domains.k or r.task.num_domains,
                    "silhouette": r.domains.silhouette, "clustering_seed": r.domains.clustering_seed,
                    "steps": r.metrics.steps_done, "train_seconds": r.metrics.train_seconds})
    columns = ["task", "row", "algo", "seed", "confirmatory", "status", "final_loss", "retrieval_top1",
               "overhead_flops_pct", "overhead_seconds_pct", "domains", "k", "silhouette", "clustering_seed", "steps",
               "train_seconds"]
    return pd.DataFrame.from_records(records, columns=columns)


_BUDGET = ("steps", "steps_per_round", "batch_size", "seq_len", "lr", "eval_per_domain", "model", "n_layer",
           "n_embd", "device")


def _identity(manifest: dict) -> str:
    identity = manifest.get("embedder_identity")
    return f" ({identity})" if identity else ""


def _params(manifest: dict) -> str:
    """Each row's protocol hyperparameters (the sweep's aside: stratified has none), by task."""
    shown = [f"{task} {row['key']}: {', '.join(f'{k} = {_short(v)}' for k, v in row['params'].items())}"
             + (f", {row['rounds']} round(s)" if row.get("rounds") else "")
             for task, registration in manifest["registration"].items() for row in registration["rows"]
             if row["params"] or row.get("rounds")]
    return "; ".join(shown) or "all defaults"


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _task_section(task: TaskResults, stats: dict[str, RowStats], out: Path) -> list[str]:
    plan, name = task.plan, task.plan.task.task
    dataset = plan.task.paper_dataset
    labels = {row.key: row.label for row in plan.rows}
    lines = [f"## {name} (paper: {dataset or 'no counterpart'})", ""]
    if plan.ood:
        lines += ["Out-of-domain: its eval domains have no training data, so every strategy trains on regrouped "
                  "domains (eval examples go to the nearest training cluster) and the baseline is stratified on "
                  "them; the paper's matching figures are Fig. 3's regroup column.", ""]
    lines += [_chosen_k(stats.get("rnb")), ""]
    base = task.runs.get(plan.baseline, [])
    for section, title in ((TABLE1, "Table 1: strategies against stratified"),
                           (IMAGE, "Image-text (paper Table 3): stratified vs R&B on regrouped captions"),
                           (FIG3, "Fig. 3 ablation: stratified on original vs regrouped domains")):
        rows = [r for r in plan.rows if r.section == section or (section == FIG3 and r.key == plan.baseline)]
        if not any(r.section == section for r in plan.rows):
            continue
        lines += [f"### {title}", "", *_row_table([stats[r.key] for r in rows], labels, plan, section == IMAGE), ""]
        if section in (TABLE1, IMAGE):
            comparison = estimator_comparison(task.runs)
            if comparison:
                lines += [f"Extension (issue 13, descriptive): {comparison}.", ""]
            lines += _section_plots(task, stats, rows, labels, base, out, section)
    lines += _balance_section(task, labels)
    lines += _sweep_section(task, stats, out)
    lines += _mixture_section(task, out)
    return lines


def _chosen_k(rnb: RowStats | None) -> str:
    if rnb is None or not rnb.seeds or rnb.k_swept is None:
        return "k chosen by silhouette: no finished R&B run to read it from."
    low, high = min(rnb.k_swept), max(rnb.k_swept)
    ks = sorted(rnb.ks) or [rnb.k]
    if any(not low < k < high for k in ks):
        where = "some at the edge of the range: the best silhouette may lie beyond it"
    elif min(ks) >= high - 0.1 * (high - low):
        where = "inside the range but in its top tenth: silhouette may still be rising at the top"
    else:
        where = "inside the range"
    sil = f"mean silhouette {rnb.silhouette:.4f}" if rnb.silhouette is not None else "silhouette —"
    chosen = f"k = {ks[0]}" if len(set(ks)) == 1 else f"k = {', '.join(map(str, ks))} over its seeds"
    return (f"k chosen by silhouette (R&B's Regroup, each seed its own clustering): **{chosen}** ({sil}) from the "
            f"swept range {low}–{high} ({len(rnb.k_swept)} values of k), {where}.")


def _balance_section(task: TaskResults, labels: dict[str, str]) -> list[str]:
    """What Balance adds beyond Regroup: R&B (either Gram) against stratified on the same regrouped
    domains, the same seeds and so the same clusterings."""
    plan = task.plan
    if plan.task.modality != "text" or not task.runs.get("stratified-regroup"):
        return []
    base = task.runs["stratified-regroup"]
    lines = ["### Balance: R&B against stratified on the same regrouped domains", "",
             "The same seeds, so the same clustering on both sides of each pair: the difference is Balance's alone.",
             "", "| row | seeds | Δ loss vs stratified (regrouped) | 95 % CI of the relative change | p (t) | "
             "p (sign-flip) |", "|---|---|---|---|---|---|"]
    for key in ("rnb", "rnb-unbiased"):
        if not task.runs.get(key):
            continue
        e = paired(task.runs[key], base)
        lines.append(f"| {labels[key]} | {e.n} | {_diff(e)} | {_interval(e)} | {_p(e.p)} | {_p(e.sign_flip_p)} |")
    return lines + [""]


def _row_table(rows: list[RowStats], labels: dict[str, str], plan: TaskPlan, image: bool) -> list[str]:
    head = ["row", "k", "seeds", "final eval loss (mean ± std)", "Δ loss vs stratified (paired)",
            "95 % CI of the relative change", "p (t)", "p (sign-flip)"]
    if image:
        head += ["retrieval top-1 (mean ± std)", "Δ retrieval vs stratified (paired)", "p (retrieval)"]
    head += ["FLOP overhead %", "time overhead %", "paper: Δ vs stratified", "paper overhead %",
             "seeds for the paper's effect"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - 1)]
    for s in rows:
        summary = s.summary
        is_base = s.key == plan.baseline
        cells = [labels[s.key] + (" (baseline)" if is_base else ""), _k_cell(s),
                 _seeds(summary), _mean_std(summary, "final_loss"),
                 *(["—"] * 4 if is_base else [_diff(s.loss), _interval(s.loss), _p(s.loss.p), _p(s.loss.sign_flip_p)])]
        if image:
            cells += [_mean_std(summary, RETRIEVAL), "—" if is_base or s.metric is None else _diff(s.metric),
                      "—" if is_base or s.metric is None else _p(s.metric.p)]
        cells += [_num(summary.get("overhead_flops_pct"), ".3g"), _num(summary.get("overhead_seconds_pct"), ".3g"),
                  _paper_cell(s, plan), _num(s.paper.overhead_pct, ".4g") if s.paper else "—",
                  "—" if is_base else _needed(s)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _k_cell(s: RowStats) -> str:
    ks = sorted(set(s.ks))
    if len(ks) > 1:
        return f"{ks[0]}–{ks[-1]}"
    return str(ks[0] if ks else s.k or "—")


def _interval(paired_) -> str:
    low, high = paired_.relative_interval()
    return "—" if not math.isfinite(low) else f"[{100 * low:+.2f}, {100 * high:+.2f}] %"


def _seeds(summary: dict) -> str:
    extra = [f"{summary[k]} {k}" for k in ("diverged", "failed") if summary.get(k)]
    return str(summary.get("seeds", 0)) + (f" ({', '.join(extra)})" if extra else "")


def _mean_std(summary: dict, name: str) -> str:
    mean, std = summary.get(f"{name}_mean"), summary.get(f"{name}_std")
    if mean is None or not math.isfinite(mean):
        return "—"
    # One seed has no spread to show (a std of 0 would read as a measured one).
    if summary.get("seeds", 0) < 2 or std is None or not math.isfinite(std):
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {std:.4f}"


def _diff(paired_) -> str:
    if not paired_.n:
        return "—"
    return f"{paired_.mean:+.4f} ({100 * paired_.relative:+.2f} %)"


def _p(p: float) -> str:
    return "—" if not math.isfinite(p) else f"{p:.3g}"


def _num(x, fmt: str) -> str:
    return "—" if x is None or not math.isfinite(x) else format(x, fmt)


def _paper_cell(s: RowStats, plan: TaskPlan) -> str:
    if plan.task.paper_dataset is None:
        return "no counterpart"
    if s.paper is None:
        return f"not in the paper for {plan.task.paper_dataset}"
    if s.key == plan.baseline:
        return f"{s.paper.value:g} ({s.paper.where})"
    return f"{100 * s.paper.relative_change:+.2f} % ({s.paper.value:g} vs {s.paper.baseline:g}; {s.paper.where})"


def _needed(s: RowStats) -> str:
    if s.paper is None:
        return "—"
    if s.paper.relative_change == 0:
        return "no effect to detect (paper: 0 %)"
    n = s.seeds_needed()
    if n is None:
        return "needs ≥ 2 paired seeds to estimate"
    return f"> {n - 1}" if n > 100_000 else str(n)


def _section_plots(task: TaskResults, stats, rows, labels, base, out: Path, section: str) -> list[str]:
    name = task.plan.task.task
    others = [r for r in rows if r.key != task.plan.baseline and task.runs.get(r.key)]
    if not others or not base:
        return []
    series = {labels[r.key]: (task.runs[r.key], base) for r in others}
    lines = []
    diff_png = plot_differences(series, out / f"{name}_{section}_loss_vs_stratified.png",
                                title=f"{name}: eval loss minus stratified's, same seed (band: min–max over seeds)",
                                ylabel="eval loss − stratified's (below 0: better)")
    lines += [f"![{name}: loss difference from stratified per step]({diff_png.name})", ""]
    if section == IMAGE:
        metric_png = plot_differences(series, out / f"{name}_{section}_retrieval_vs_stratified.png",
                                      title=f"{name}: retrieval top-1 minus stratified's, same seed",
                                      ylabel="retrieval top-1 − stratified's (above 0: better)", value=RETRIEVAL)
        lines += [f"![{name}: retrieval difference from stratified per step]({metric_png.name})", ""]
    rel_png = plot_relative_changes([stats[r.key] for r in others], labels, out / f"{name}_{section}_relative.png",
                                    title=f"{name}: final relative change vs stratified, mixbench vs paper",
                                    retrieval=section == IMAGE and any(stats[r.key].metric for r in others))
    return lines + [f"![{name}: final relative change vs stratified with 95 % intervals]({rel_png.name})", ""]


def _sweep_section(task: TaskResults, stats: dict[str, RowStats], out: Path) -> list[str]:
    plan, name = task.plan, task.plan.task.task
    if not any(r.section == FIG2 for r in plan.rows):
        return []
    points, _ = sweep_on_common_seeds(task.runs, plan.rows, plan.baseline)
    seeds = points[0].seeds if points else 0
    lines = ["### Fig. 2 sweep: stratified at fixed k", "",
             f"Every k on the {seeds} seed(s) all of them finished (so the k values are compared on the same "
             "seeds); each seed clusters with its own k-means seed, and the silhouette is the mean over them.", "",
             "| k | silhouette | seeds | final eval loss (mean ± std) | Δ vs stratified (paired) | p (t) |",
             "|---|---|---|---|---|---|"]
    for s in points:
        sil = "—" if s.silhouette is None else f"{s.silhouette:.4f}"
        lines.append(f"| {s.k} | {sil} | {_seeds(s.summary)} | {_mean_std(s.summary, 'final_loss')} | "
                     f"{_diff(s.loss)} | {_p(s.loss.p)} |")
    usable = [q for q in points if q.silhouette is not None]
    rho, p = spearman_exact([q.silhouette for q in usable], [q.summary["final_loss_mean"] for q in usable]) \
        if len(usable) >= 3 else (math.nan, math.nan)
    lines += ["", ("Silhouette against final loss: too few k values finished." if not math.isfinite(rho) else
                   f"Silhouette against final loss over the {len(usable)} registered k values (distinct "
                   f"clusterings): Spearman ρ = {rho:+.3f}, exact p = {_p(p)} (the paper's Fig. 2 prints R² only)."),
              ""]
    if len(points) >= 2:
        rnb = stats.get("rnb")
        base = stats.get(plan.baseline)
        png = plot_k_sweep(points, out / f"{name}_k_sweep.png", title=f"{name}: Fig. 2 sweep",
                           stratified_original=base.summary.get("final_loss_mean") if base and not plan.ood else None,
                           chosen_k=rnb.k if rnb and rnb.seeds else None)
        lines += [f"![{name}: loss and silhouette against k]({png.name})", ""]
    return lines


def _mixture_section(task: TaskResults, out: Path) -> list[str]:
    name = task.plan.task.task
    lines = []
    for row in task.plan.rows:
        if row.algo == "stratified":
            continue
        done = sorted((r for r in task.runs.get(row.key, []) if r.finished and r.mixture.per_round),
                      key=lambda r: r.seed)
        if not done:
            continue
        r = done[0]
        png = plot_mixture_heatmap(r, out / f"{name}_mixture_{row.key}.png",
                                   title=f"{name}: {row.label}, seed {r.seed}: mixture per round")
        lines += [f"![{name}: mixture of {row.label}]({png.name})", ""]
    if lines:
        lines = ["### Mixtures (first seed; colour: log2 of p relative to uniform)", "",
                 *_concentration_table(task), ""] + lines
    return lines


def _concentration_table(task: TaskResults) -> list[str]:
    """How far each adaptive row's mixtures left uniform, over its seeds: the largest p any round
    sampled from, and the effective number of domains e^H of the last round's mixture (m when
    uniform). A mixture that starves domains explains a row that loses on the mean eval loss."""
    lines = []
    for row in task.plan.rows:
        done = [r for r in task.runs.get(row.key, []) if r.finished and r.mixture.per_round]
        if row.algo == "stratified" or not done:
            continue
        peak = [max(max(p) for p in r.mixture.per_round) for r in done]
        effective = [_effective_domains(r.mixture.per_round[-1]) for r in done]
        m = len(done[0].mixture.per_round[-1])
        lines.append(f"| {row.label} | {m} | {np.mean(peak):.3f} (uniform {1 / m:.3f}) | "
                     f"{np.mean(effective):.1f} ({100 * np.mean(effective) / m:.0f} % of m) | {len(done)} |")
    if not lines:
        return []
    return ["Mean over seeds of the largest p any round sampled from, and of the effective number of domains "
            "e^H of the last round's mixture (m when uniform). These are the mixtures the strategies chose; steps a "
            "strategy trains on mixtures of its own probes (Aioli's LearnParams: lp_rounds × m × lp_steps per round, "
            "all of a round when that reaches steps_per_round, as the run's log warns) are not in them.", "",
            "| row | m | largest p | effective domains, last round | seeds |", "|---|---|---|---|---|", *lines]


def _effective_domains(p: list[float]) -> float:
    q = np.asarray(p, dtype=float)
    q = q[q > 0] / q.sum()
    return float(np.exp(-(q * np.log(q)).sum()))


def _power_section(analysed) -> list[str]:
    return ["## Seeds needed to detect the paper's effects", "",
            "For each row with a paper figure, the paper's relative change vs stratified is put on our scale "
            "(δ = paper's relative change × our stratified mean over the paired seeds) and set against the "
            "standard deviation σ_d of our paired per-seed differences (row − stratified). The column \"seeds for "
            "the paper's effect\" is the smallest n at which a two-sided paired t-test at α = "
            f"{protocol.ALPHA} has power {protocol.POWER}: n ≈ ((z₁₋α/₂ + z_power) · σ_d / δ)² by the normal "
            "approximation, computed exactly with the noncentral t distribution (noncentrality δ·√n/σ_d, n − 1 "
            "degrees of freedom). It assumes our seed spread and the paper's effect size; a row whose measured "
            "effect is far from the paper's needs many more or fewer seeds to settle its verdict.", ""]


def _task_name(task: str, datasets: dict) -> str:
    dataset = datasets.get(task)
    return f"{task} ({dataset})" if dataset else task


# -- Markdown → HTML (only what this report writes) -------------------------------------------------------

def to_html(markdown: str) -> str:
    body, table, code, items = [], [], None, []

    def inline(text: str) -> str:
        text = html.escape(text)
        text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
        text = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)
        return re.sub(r"\*([^*]+)\*", r"<i>\1</i>", text)

    def flush():
        if table:
            head, *rows = table
            body.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>" + "".join(
                "<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows) + "</table>")
            table.clear()
        if items:
            body.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            items.clear()

    for line in markdown.splitlines():
        if code is not None:
            if line.startswith("```"):
                body.append(f"<pre>{html.escape(chr(10).join(code))}</pre>")
                code = None
            else:
                code.append(line)
            continue
        if line.startswith("```"):
            flush()
            code = []
        elif line.startswith("|"):
            if not set(line) <= set("|-: "):
                table.append([inline(c.strip()) for c in line.strip().strip("|").split("|")])
        elif line.startswith("- "):
            items.append(inline(line[2:]))
        elif (image := re.fullmatch(r"!\[(.*)\]\((.*)\)", line.strip())):
            flush()
            body.append(f'<img src="{html.escape(image[2])}" alt="{html.escape(image[1])}" style="max-width:100%">')
        elif (heading := re.match(r"(#{1,3}) (.*)", line)):
            flush()
            level = len(heading[1])
            body.append(f"<h{level}>{inline(heading[2])}</h{level}>")
        elif line.strip():
            flush()
            body.append(f"<p>{inline(line)}</p>")
        else:
            flush()
    flush()
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;"
             "font-size:90%}td,th{border:1px solid #ccc;padding:3px 6px}pre{background:#f4f4f4;padding:6px;"
             "white-space:pre-wrap}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(TITLE)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
