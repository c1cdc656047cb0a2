"""`mixbench report DIR`: a Markdown and an HTML report, with PNG plots, from the results under DIR.

Per task: the comparison table; eval loss minus stratified's per step (paired by seed, ±1 standard
error band) and the final relative change with 95 % t intervals, then the absolute curves (without
stratified runs, those alone, saying so); each strategy's mixture as a domains × rounds heatmap of
weight / uniform (one uniform in every round, such as stratified's, in one line); rnb's last Gram matrix;
overhead per strategy on a log axis that draws only positive values. Where `mixbench regroup`
sweeps are present, silhouette against k (with the eval loss of runs at several k when those
exist: the paper's Fig. 2). Every figure's title names its task.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np

from mixbench.errors import MixbenchError
from mixbench.experiments.plots import (
    group_label,
    plot_curves,
    plot_differences,
    plot_mixture_heatmap,
    plot_overhead,
    plot_relative_changes,
    save_png,
    uniform_throughout,
)
from mixbench.experiments.results import RunResult, is_run_result
from mixbench.experiments.summary import Group, curve_metrics, group_notes, summarize
from mixbench.experiments.tables import format_markdown
from mixbench.storage.atomic import check_writable, write_text

# The paper's Table 1 overhead ranges (% of training FLOPs): a different model and data, for scale.
PAPER_TABLE1 = {"rnb": "0.0006 – 0.1", "dga": "0.4 – 1601", "skillit": "14 – 6e7", "aioli": "62 – 7e6"}
PAPER_TABLE1_RANGES = {algo: tuple(float(x) for x in text.split(" – ")) for algo, text in PAPER_TABLE1.items()}


def load_results(directory: Path) -> tuple[list[RunResult], list[dict]]:
    """(run results, regroup sweeps) under `directory`. A file that does not parse is named."""
    if not directory.is_dir():
        raise MixbenchError(f"{directory} is not a directory")
    runs, sweeps = [], []
    for path in sorted(directory.rglob("*.json")):
        if "report" in path.relative_to(directory).parts or not path.is_file():   # a folder named *.json
            continue
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise MixbenchError(f"cannot read {path}: {exc}") from None
        if is_run_result(payload):
            try:
                runs.append(RunResult.from_json(payload))
            except MixbenchError as exc:
                raise MixbenchError(f"{path}: {exc}") from None
        elif isinstance(payload, dict) and "sweep" in payload and "train_labels" in payload:
            sweeps.append({**payload, "_path": str(path)})
    if not runs and not sweeps:
        raise MixbenchError(f"no mixbench results under {directory}")
    return runs, sweeps


def render(directory: Path, out: Path) -> tuple[Path, Path]:
    """The report of every result under `directory`, in `out`. Runs of different tasks (or task
    versions) are never set side by side: each task has its own sections (table, curves,
    mixtures, Gram, overhead), its own plots; within a task, runs made otherwise than the rest
    are rows and curves of their own (summary.Group)."""
    import matplotlib

    matplotlib.use("Agg")

    runs, sweeps = load_results(Path(directory))
    check_writable(out, out / "report.md", out / "report.html")   # before any plot is drawn
    tasks = sorted({(r.task.name, r.task.version) for r in runs})
    names = [name for name, _ in tasks]
    sections: list[tuple[str, str, str | None]] = []  # (title, markdown text, image file)
    if len(tasks) > 1:
        sections.append(("Tasks", f"This folder holds runs of {len(tasks)} tasks: "
                         f"{', '.join(_task_label(t, names) for t in tasks)}. Each has its own sections below; "
                         "no table, curve or plot sets runs of two tasks side by side.", None))
    for task in tasks:
        label = _task_label(task, names)
        part = "" if len(tasks) == 1 else f"{_file_part(label)}_"
        heading = "" if len(tasks) == 1 else f": {label}"
        sections += _task_sections([r for r in runs if (r.task.name, r.task.version) == task], out, part, heading)
    for sweep in sweeps:
        name = f"k_sweep_{sweep['task']}_{Path(sweep['_path']).stem}.png"
        finished = [r for r in runs if r.finished and r.task.name == sweep["task"]]
        _k_sweep(sweep, finished, out / name)
        sections.append((f"Regroup sweep: {sweep['task']} ({sweep['embedder']})",
                         f"Chosen k = {sweep['k']} (silhouette {sweep['silhouette']:.4f}).", name))

    md_path, html_path = out / "report.md", out / "report.html"
    write_text(md_path, _markdown(directory, sections))
    write_text(html_path, _html(directory, sections))
    return md_path, html_path


def _task_sections(runs: list[RunResult], out: Path, part: str, heading: str) -> list[tuple[str, str, str | None]]:
    """One task's sections; its plots' files start with `part`, its titles end with `heading`.
    Every figure's caption is one line saying how to read it."""
    finished = [r for r in runs if r.finished]
    sections: list[tuple[str, str, str | None]] = []
    if finished or any(r.diverged for r in runs):
        sections.append((f"Summary{heading}", format_markdown(summarize(runs)), None))   # diverged seeds counted
    if not finished:
        return sections
    table = summarize(finished)
    for metric in [None, *curve_metrics(finished)]:   # the loss; image-text: zero-shot retrieval too
        sections += _comparison_sections(finished, metric, out, part, heading)
    sections += _mixture_sections(finished, out, part, heading)
    gram = next((r for r in finished if r.strategy.extras.get("last_gram")), None)
    if gram is not None:
        missing = _gram_heatmap(gram, out / f"{part}gram.png")
        sections.append((f"R&B's last Gram matrix{heading}", "G_ij = <g_i, g_j>/(n_i n_j) at the last update, "
                         f"{gram.task.name}, seed {gram.seed}: red pairs of domains pull the same way, blue "
                         f"opposite ways{'; grey: a domain not drawn in that round' if missing else ''}.",
                         f"{part}gram.png"))
    save_png(plot_overhead(table, PAPER_TABLE1_RANGES), out / f"{part}overhead.png")
    paper = "\n".join(["| strategy | ours: FLOP overhead % (mean over seeds) | paper Table 1 range % |",
                       "|---|---|---|"] + [f"| {row.algo} ({row.domains}{_other(row.settings)}) | "
                                           f"{row.overhead_flops_pct:.4g} | {PAPER_TABLE1.get(row.algo, '—')} |"
                                           for row in table.itertuples()])
    sections.append((f"Overhead{heading}", paper + "\n\nExtra FLOPs as % of training on a log axis: a strategy "
                     "with none is written 0 (none), not drawn; the grey lines are the paper's Table 1 ranges, "
                     "from other models and data (ours are measured on these runs).", f"{part}overhead.png"))
    return sections



# How to read each comparison figure, under it in the report.
_CAPTIONS = {
    "vs_stratified": "Each line: a strategy's {name} minus stratified's at the same step and seed, averaged over "
                     "the seeds both ran; the band is ±1 standard error of that mean (with 2 seeds, their min to "
                     "max); {better}.",
    "relative": "Dot: the mean over seeds of (strategy − stratified) / stratified for the final {name}, same seed; "
                "whisker: its 95 % t interval (none with one seed); grey triangles: single seeds. An interval "
                "crossing 0 is no measured difference.",
}

def _comparison_sections(finished: list[RunResult], metric: str | None, out: Path, part: str,
                         heading: str) -> list[tuple[str, str, str | None]]:
    """The loss (or task metric) against stratified: the per-step difference and the final relative
    change, then the plain curves; without a stratified run to pair with, the plain curves alone,
    saying so."""
    name = "eval loss" if metric is None else metric
    title = "Eval loss" if metric is None else metric   # a metric's name as the results spell it
    stem = "eval_loss" if metric is None else metric
    better = "below 0 is lower loss than stratified" if metric is None else f"above 0 is higher {metric}"
    sections: list[tuple[str, str, str | None]] = []

    def add(figure, kind: str, header: str) -> None:
        file = f"{part}{stem}_{kind}.png"
        save_png(figure, out / file)
        sections.append((header, _CAPTIONS[kind].format(name=name, better=better), file))

    differences = plot_differences(finished, metric)
    if differences is not None:
        add(differences, "vs_stratified", f"{title} minus stratified's{heading}")
        relative = plot_relative_changes(finished, metric)
        if relative is not None:
            add(relative, "relative", f"Final {name} relative to stratified{heading}")
        plain = "The absolute curves (mean over seeds, band min to max): differences between strategies are " \
                "usually too small to see here; the figure above shows them."
    else:
        plain = "No stratified run pairs with these (same task, settings and seeds), so no difference from " \
                "stratified can be shown: the absolute curves instead (mean over seeds, band min to max)."
    save_png(plot_curves(finished, metric), out / f"{part}{stem}.png")
    sections.append((f"{title} during training{heading}", plain, f"{part}{stem}.png"))
    return sections


def _mixture_sections(finished: list[RunResult], out: Path, part: str,
                      heading: str) -> list[tuple[str, str, str | None]]:
    """One heatmap per group (its lowest seed), but a mixture uniform in every round (stratified's)
    is one line instead."""
    notes = group_notes(finished)
    sections: list[tuple[str, str, str | None]] = []
    uniform = []
    used: set[str] = set()
    for group, r in _first_seed_per_group(finished, notes):
        label = group_label(group, notes[group])
        if uniform_throughout(r.mixture.per_round):
            uniform.append(label)
            continue
        stem = f"{part}mixture_{group.algo}_{group.domains}"   # the rest's group first: it gets the plain name
        name, i = f"{stem}.png", 2
        while name in used:
            name, i = f"{stem}_{i}.png", i + 1
        used.add(name)
        save_png(plot_mixture_heatmap(r.mixture.per_round, r.domains.names,
                                      title=f"{r.task.name}: {label}, seed {r.seed}: mixture per round"),
                 out / name)
        sections.append((f"Mixture: {label}{heading}",
                         f"Rows: its {len(r.domains.names)} domains, heaviest in the last round first; columns: "
                         f"rounds; colour: weight / uniform on a log2 scale (white uniform, red more, blue less); "
                         f"seed {r.seed}.", name))
    if uniform:
        sections.append((f"Uniform mixtures{heading}", f"{'; '.join(uniform)}: uniform over the domains in every "
                         "round, so no heatmap.", None))
    return sections


def _task_label(task: tuple[str, str], names: list[str]) -> str:
    """A task's name, with its version when two versions of it are here."""
    name, version = task
    return name if names.count(name) == 1 else f"{name} (version {version})"


def _file_part(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-")


def _other(note: str) -> str:
    return f"; {note}" if note else ""


def _first_seed_per_group(results: list[RunResult], notes: dict[Group, str]) -> list[tuple[Group, RunResult]]:
    """Each group's run of the lowest seed, in the table's order (the rest's group before others)."""
    chosen: dict[Group, RunResult] = {}
    for r in sorted(results, key=lambda r: r.seed):
        chosen.setdefault(Group.of(r), r)
    return sorted(chosen.items(), key=lambda item: (item[0].algo, item[0].domains, notes[item[0]] != "", item[0]))


def _gram_heatmap(result: RunResult, path: Path) -> bool:
    """Draws rnb's last Gram; whether some of it is missing (NaN: domains not drawn that round)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    gram = np.array(result.strategy.extras["last_gram"], dtype=float)
    missing = bool(np.isnan(gram).any())
    fig, ax = plt.subplots(figsize=(7, 5.8))
    limit = np.nanmax(np.abs(gram)) if np.isfinite(gram).any() else 1.0   # NaN: a domain not drawn that round
    limit = limit or 1.0
    colours = plt.get_cmap("RdBu_r").with_extremes(bad="lightgray")   # NaN apart from 0 (white)
    image = ax.imshow(gram, cmap=colours, vmin=-limit, vmax=limit, interpolation="nearest")
    names = result.domains.names
    if len(names) == len(gram) and len(names) <= 16:   # few enough to name
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
    else:   # the domains' indices, whole numbers only
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("domain j")
    ax.set_ylabel("domain i")
    ax.set_title(f"{result.task.name}: R&B's last Gram of per-domain mean final-layer gradients\n"
                 f"seed {result.seed}, domains in training order"
                 + ("; grey: a domain not drawn that round" if missing else ""), fontsize=10)
    fig.colorbar(image, ax=ax, label="<g_i, g_j> / (n_i n_j)")
    fig.tight_layout()
    save_png(fig, path)
    return missing


def _k_sweep(sweep: dict, runs: list[RunResult], path: Path) -> None:
    """Silhouette against k; where runs at several k exist, their final eval loss too (Fig. 2)."""
    import matplotlib.pyplot as plt

    ks = [r["k"] for r in sweep["sweep"]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(ks, [r["silhouette"] for r in sweep["sweep"]], "o-", ms=3, color="tab:blue", label="silhouette")
    ax.set_xlabel("k (number of clusters)")
    ax.set_ylabel("silhouette score", color="tab:blue")
    by_k = {}
    for r in runs:
        if r.task.name == sweep["task"] and r.domains.method == "regroup":
            by_k.setdefault(r.domains.k, []).append(r.final_loss)
    if len(by_k) > 1:
        right = ax.twinx()
        xs = sorted(by_k)
        right.plot(xs, [np.mean(by_k[k]) for k in xs], "s--", color="tab:red", label="final eval loss")
        right.set_ylabel("final mean eval loss", color="tab:red")
    ax.axvline(sweep["k"], color="gray", ls="--", lw=1)
    ax.set_title(f"regroup {sweep['task']}: silhouette against k (chosen k = {sweep['k']})")
    fig.tight_layout()
    save_png(fig, path)


def _markdown(directory: Path, sections) -> str:
    parts = [f"# mixbench report: {directory}", ""]
    for title, text, image in sections:
        parts += [f"## {title}", ""]
        if text:
            parts += [text, ""]
        if image:
            parts += [f"![{title}]({image})", ""]
    return "\n".join(parts)


def _html(directory: Path, sections) -> str:
    body = [f"<h1>mixbench report: {html.escape(str(directory))}</h1>"]
    for title, text, image in sections:
        body.append(f"<h2>{html.escape(title)}</h2>")
        body.append(_md_to_html(text))
        if image:
            body.append(f'<img src="{html.escape(image)}" alt="{html.escape(title)}" style="max-width:100%">')
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>mixbench report</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def _md_to_html(text: str) -> str:
    """The small Markdown this module writes: pipe tables and paragraphs."""
    out, table = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|-: "):
                table.append([html.escape(c.strip()) for c in line.strip("|").split("|")])
            continue
        if table:
            head, *rows = table
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
                       + "</table>")
            table = []
        if line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    return "\n".join(out)
