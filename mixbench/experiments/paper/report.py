"""The paper report: OUT/report/paper.md and paper.html with their PNGs.

For every row, mixbench's mean ± std over seeds and its paired test against stratified, beside
the paper's figure for the matching row as a relative change against stratified (absolute losses
are not comparable across models and data); one verdict per claim and task; the seeds a paired
test would need to see the paper's effect; and how the run was made (command, settings, versions,
machine). `build` takes the results themselves, so it can be checked on made-up numbers.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
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
from mixbench.experiments.paper.runner import TaskPlan, load_rows, read_manifest, report_seeds
from mixbench.experiments.paper.stats import (
    NOT_MEASURED,
    RETRIEVAL,
    SILHOUETTE_CHOICE,
    RowStats,
    Verdict,
    estimator_comparison,
    row_stats,
    silhouette_correlation,
    sweep_on_common_seeds,
    verdicts,
)
from mixbench.experiments.results import RunResult
from mixbench.storage.atomic import check_writable, write_text

TITLE = "R&B (arXiv 2505.00358) reproduced with mixbench"


@dataclass
class TaskResults:
    plan: TaskPlan
    runs: dict[str, list[RunResult]]     # row key → its results, one per seed that has a results file


def render(out_dir: Path, report_dir: Path | None = None) -> tuple[Path, Path]:
    """The report of the run recorded in OUT/paper.json, from the results under OUT."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    ks, seeds = tuple(manifest["settings"]["ks"]), report_seeds(manifest)
    tasks, left_out = [], []
    for values in manifest["tasks"]:
        plan = TaskPlan.from_dict(values, ks)
        runs, stale = _made_by(load_rows(out_dir, plan, seeds), manifest.get("embedder_identity"))
        tasks.append(TaskResults(plan, runs))
        left_out += [f"{plan.task.task} {line}" for line in stale]
    return build({**manifest, "left_out": left_out}, tasks, report_dir or out_dir / "report")


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
    out = Path(out)
    md_path, html_path = out / "paper.md", out / "paper.html"
    check_writable(out, md_path, html_path)
    analysed = [(t, row_stats(t.runs, t.plan.rows, t.plan.baseline, t.plan.task.paper_dataset)) for t in tasks]
    found = [v for t, stats in analysed for v in verdicts(t.plan.task.task, stats, t.runs, t.plan.rows,
                                                           t.plan.baseline, t.plan.ood, t.plan.task.modality)]
    lines = [f"# {TITLE}", "",
             "Made by `mixbench paper`. The paper trained GPT-Neo-125M, Qwen2-0.5B and CLIP on its own data; "
             "mixbench trains small models on offline stand-ins, so absolute losses are not comparable and every "
             "comparison here is against stratified on the same seeds, as a difference and as a relative change.", ""]
    lines += _verdict_section(found, tasks)
    lines += _run_section(manifest)
    for task, stats in analysed:
        lines += _task_section(task, stats, out)
    lines += _power_section(analysed)
    write_text(md_path, "\n".join(lines) + "\n")
    write_text(html_path, to_html("\n".join(lines)))
    return md_path, html_path


# -- sections ------------------------------------------------------------------------------------------

def _verdict_section(found: list[Verdict], tasks: list[TaskResults]) -> list[str]:
    datasets = {t.plan.task.task: t.plan.task.paper_dataset for t in tasks}
    titles = {c.key: c.title for c in CLAIMS}
    lines = ["## Verdicts", "",
             f"Two-sided paired t-tests over the seeds both sides finished, α = {protocol.ALPHA}: *reproduced* when "
             "the paper's direction is significant, *not reproduced* when the opposite one is (for the overhead "
             "claim also when R&B's overhead exceeds 1/100 of the cheapest adaptive baseline's), else *not "
             "significant at these seeds* (always so below two paired seeds).", ""]
    for v in found:
        if v.outcome == NOT_MEASURED:
            lines.append(f"- **{titles[v.claim]}** — {_task_name(v.task, datasets)}: {v.outcome} ({v.measured})")
        else:
            lines.append(f"- **{titles[v.claim]}** — {_task_name(v.task, datasets)}: **{v.outcome}**. {v.measured}")
    lines += ["", "What the paper reports for each claim:", ""]
    lines += [f"- **{c.title}**: {c.paper}" for c in CLAIMS]
    return lines + [""]


def _run_section(manifest: dict) -> list[str]:
    settings, proto = manifest["settings"], manifest["protocol"]
    quick = " (--quick: a smoke version)" if settings.get("quick") else ""
    earlier = manifest.get("history", [])
    commands = [*(entry["command"] for entry in earlier), manifest["command"]]
    lines = ["## How this was run", ""]
    if earlier:
        lines += [f"{len(commands)} commands under the same settings, in this order (a command with --rows ran "
                  "only those rows and the baseline; the seeds column of each table counts what each row has):", ""]
    seeds = report_seeds(manifest)
    tasks = list(dict.fromkeys([*(t for entry in earlier for t in entry["tasks"]), *settings["tasks"]]))
    lines += ["```", *commands, "```", "",
             f"- Seeds {', '.join(map(str, seeds))}; tasks {', '.join(tasks)}; embedder "
             f"`{settings['embedder']}`{_identity(manifest)}{quick}.",
             f"- Fixed before the run and the same for every task (nothing tuned per task): the k sweep "
             f"{', '.join(map(str, proto['k_sweep']))}; Skill-It's graph runs take graph_fraction = "
             f"{proto['skillit_graph_fraction']} of the run's steps each unless --param says otherwise (paper Table "
             f"6: 200 graph steps for 2000 training steps); Aioli updates its mixture {proto['aioli_rounds']} "
             "times per run (Table 6: rounds = 2, sweeps = 1); every other setting is mixbench's default for the "
             "strategy and the task's own budget below.",
             f"- Strategy settings per row: {_params(proto['strategy_params'])}.",
             f"- Budget overrides for every task: {settings['overrides'] or 'none'}.",
             "", "| task | " + " | ".join(_BUDGET) + " |", "|---|" + "---|" * len(_BUDGET)]
    lines += [f"| {task} | " + " | ".join(str(cfg.get(k, "—")) for k in _BUDGET) + " |"
              for task, cfg in manifest["budgets"].items()]
    versions = ", ".join(f"{k} {v}" for k, v in manifest["versions"].items())
    machine = ", ".join(f"{k} {v}" for k, v in manifest["machine"].items())
    lines += ["", f"- Versions: {versions}.", f"- Machine: {machine}.",
              f"- Started {manifest.get('started_at', '?')}, finished {manifest.get('finished_at', 'not yet')}."]
    if manifest.get("failed_cells"):
        lines.append(f"- Cells that failed: {'; '.join(manifest['failed_cells'])}.")
    if manifest.get("left_out"):
        lines.append(f"- Left out: {len(manifest['left_out'])} regrouped cell(s) under --out made with another "
                     "embedder than this run's (rerun the command to replace them): "
                     f"{'; '.join(manifest['left_out'])}.")
    lines += ["- The paper's figures: arXiv 2505.00358v1, read in a text copy of its PDF (the search tool's pages "
              "corpus returned only the opening of arxiv.org/html/2505.00358v1); where each comes from is beside "
              "it. The issue's \"Table 2 image-text setting\" is Table 3 in that text (Table 2 there is S1-59K).", ""]
    return lines


_BUDGET = ("steps", "steps_per_round", "batch_size", "seq_len", "lr", "eval_per_domain", "model", "n_layer",
           "n_embd", "device")


def _identity(manifest: dict) -> str:
    identity = manifest.get("embedder_identity")
    return f" ({identity})" if identity else ""


def _params(values: dict) -> str:
    shown = [f"{row}: {', '.join(f'{k} = {v}' for k, v in p.items())}" for row, p in values.items() if p]
    return "; ".join(shown) or "all defaults"


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
            comparison = estimator_comparison(stats, task.runs)
            if comparison:
                lines += [f"Extension (issue 13): {comparison}.", ""]
            lines += _section_plots(task, stats, rows, labels, base, out, section)
    lines += _sweep_section(task, stats, out)
    lines += _mixture_section(task, out)
    return lines


def _chosen_k(rnb: RowStats | None) -> str:
    if rnb is None or not rnb.seeds or rnb.k_swept is None:
        return "k chosen by silhouette: no finished R&B run to read it from."
    low, high = min(rnb.k_swept), max(rnb.k_swept)
    if not low < rnb.k < high:
        where = "at the edge of the range: the best silhouette may lie beyond it"
    elif rnb.k >= high - 0.1 * (high - low):
        where = "inside the range but in its top tenth: silhouette may still be rising at the top"
    else:
        where = "inside the range"
    sil = f"silhouette {rnb.silhouette:.4f}" if rnb.silhouette is not None else "silhouette —"
    return (f"k chosen by silhouette (R&B's Regroup): **k = {rnb.k}** ({sil}) from the swept range {low}–{high} "
            f"({len(rnb.k_swept)} values of k), {where}.")


def _row_table(rows: list[RowStats], labels: dict[str, str], plan: TaskPlan, image: bool) -> list[str]:
    head = ["row", "k", "seeds", "final eval loss (mean ± std)", "Δ loss vs stratified (paired)", "p"]
    if image:
        head += ["retrieval top-1 (mean ± std)", "Δ retrieval vs stratified (paired)", "p (retrieval)"]
    head += ["FLOP overhead %", "time overhead %", "paper: Δ vs stratified", "paper overhead %",
             "seeds for the paper's effect"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - 1)]
    for s in rows:
        summary = s.summary
        is_base = s.key == plan.baseline
        cells = [labels[s.key] + (" (baseline)" if is_base else ""), str(s.k or "—"),
                 _seeds(summary), _mean_std(summary, "final_loss"),
                 "—" if is_base else _diff(s.loss), "—" if is_base else _p(s.loss.p)]
        if image:
            cells += [_mean_std(summary, RETRIEVAL), "—" if is_base or s.metric is None else _diff(s.metric),
                      "—" if is_base or s.metric is None else _p(s.metric.p)]
        cells += [_num(summary.get("overhead_flops_pct"), ".3g"), _num(summary.get("overhead_seconds_pct"), ".3g"),
                  _paper_cell(s, plan), _num(s.paper.overhead_pct, ".4g") if s.paper else "—",
                  "—" if is_base else _needed(s)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


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
             f"Every k on the {seeds} seed(s) all of them finished (a row with more seeds elsewhere in the report "
             "is cut to these here, so the k values are compared on the same seeds).", "",
             "| k | silhouette | seeds | final eval loss (mean ± std) | Δ vs stratified (paired) | p |",
             "|---|---|---|---|---|---|"]
    for s in points:
        sil = "—" if s.silhouette is None else f"{s.silhouette:.4f}"
        k = f"{s.k} (silhouette's choice)" if s.key == SILHOUETTE_CHOICE else str(s.k)
        lines.append(f"| {k} | {sil} | {_seeds(s.summary)} | {_mean_std(s.summary, 'final_loss')} | "
                     f"{_diff(s.loss)} | {_p(s.loss.p)} |")
    corr = silhouette_correlation(points)
    lines += ["", ("Silhouette against final loss: too few k values finished." if corr is None else
                   f"Silhouette against final loss over {corr.n} k values: Pearson r = {corr.r:+.3f}, R² = "
                   f"{corr.r2:.3f}, p = {_p(corr.p)} (the paper's Fig. 2 prints R² only)."), ""]
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
