"""What `mixbench run` prints when a run ends: losses, per-domain table, mixture, overhead, where
the results went."""

from __future__ import annotations

import math
from pathlib import Path

import click

from mixbench.experiments.results import MlflowRun, RunResult, finite

SHOWN_DOMAINS = 16    # more domains than this: the best and worst 6 are shown


def print_summary(result: RunResult, path: Path, mlflow: MlflowRun | None = None) -> None:
    echo = click.echo
    m, domains, cfg = result.metrics, result.domains.names, result.config
    final_p = result.mixture.final or [math.nan] * len(domains)
    echo(f"\n{result.strategy.name} on {result.task.name} "
         f"({len(domains)} domains), seed {result.seed}, {m.steps_done}/{cfg.steps} steps "
         f"on {result.environment.device}, {m.num_params / 1e6:.2f}M params, {m.train_seconds:.0f} s, "
         f"regime {cfg.regime}")
    echo(f"mean eval loss (q-weighted): initial {_f(m.initial_mean_eval_loss)} -> final "
         f"{_f(m.final_mean_eval_loss)}")
    if result.domains.method != "original":
        echo(f"by the task's {len(m.final_reference_eval_losses)} original domains (what compare uses): initial "
             f"{_f(m.initial_reference_eval_loss)} -> final {_f(m.final_reference_eval_loss)}")
    for line in _metric_lines(m.initial_eval_metrics, m.final_eval_metrics):
        echo(line)
    for line in _domain_table(result, final_p):
        echo(line)
    p = [x for x in final_p if finite(x)]
    if p:
        top = max(range(len(final_p)), key=lambda i: final_p[i])
        echo(f"final mixture: max p {max(p):.4f} ({domains[top]}), min p {min(p):.4f}, "
             f"uniform would be {1 / len(p):.4f}")
    o = result.overhead
    if o is not None:
        echo(f"overhead: {o.flops_pct:.4f} % of training FLOPs "
             f"(Balance's G q only, what the paper counts: {o.paper_flops_pct:.4f} %); "
             f"{o.seconds_pct:.2f} % of training seconds "
             f"({o.overhead_seconds:.2f} s of {o.train_seconds:.1f} s)")
        if o.paper_formula_flops is not None:
            ratio = o.measured_over_formula
            echo(f"overhead by formula (R&B App. D, else the strategy's own): {o.paper_formula_flops:.3g} "
                 f"FLOPs; measured "
                 f"{o.overhead_flops:.3g}" + (f" ({ratio:.3g}× the formula)" if ratio is not None else ""))
    for line in _communication_lines(result):
        echo(line)
    if m.tap_accumulator:
        echo(f"gradient tap sums: {m.tap_accumulator}")
    stages = _stages_line(m.stage_seconds, result.domains)
    if stages:
        echo(stages)
    echo(f"results: {path}")
    if mlflow is not None:
        echo(f"mlflow: run {mlflow.run_id} in experiment {mlflow.experiment_id} at {mlflow.tracking_uri}")
        echo(f"        view with: mlflow ui --backend-store-uri {mlflow.tracking_uri}")


STAGE_NAMES = {"loading": "loading", "embedding": "embedding", "k_sweep": "k sweep", "assignment": "assignment",
               "training": "training"}


def _stages_line(seconds: dict[str, float], domains) -> str:
    """'time: loading 0.2 s, embedding 3.1 s, k sweep 12 s, ... training 41 s (evaluation 5.0 s of it)'."""
    if not seconds:
        return ""
    parts = [f"{label} {_duration(seconds[key])}" for key, label in STAGE_NAMES.items() if key in seconds]
    if domains.method == "regroup" and "embedding" not in seconds:
        parts.insert(1, "embedding and k sweep from the cache" if "k_sweep" not in seconds
                     else "embeddings from the cache")
    line = "time: " + ", ".join(parts)
    if "evaluation" in seconds and "training" in seconds:
        line += f" (evaluation {_duration(seconds['evaluation'])} of it)"
    return line


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _communication_lines(result: RunResult) -> list[str]:
    """A data-parallel run's traffic: the tap's all-reduce (R&B's only extra, in the overhead
    above) per round, and what data-parallel training itself sends per step (not overhead)."""
    o = result.overhead
    sent = o.bytes_by_label if o is not None else {}
    if not sent:
        return []
    steps = max(1, result.metrics.steps_done)
    lines = [f"communication ({result.environment.world_size} processes; bytes each all-reduces or gathers):"]
    tap = sent.get("tap/allreduce")
    if tap:
        # One all-reduce at every round end that has an update after it (all but the last); a
        # checkpoint mid-round adds one.
        updates = max(1, sum(1 for r in result.rounds if r.step < result.config.steps))
        seconds = o.seconds_by_label.get("tap/allreduce", 0.0)
        lines.append(f"  tap all-reduce (per-domain sums and counts): {_bytes(tap / updates)} per round, "
                     f"{seconds:.3f} s in all (in the overhead above)")
    train = {label: v for label, v in sent.items() if label.startswith("comm/")}
    if train:
        lines.append("  data-parallel training itself (not overhead): "
                     + ", ".join(f"{label.removeprefix('comm/').replace('_', ' ')} {_bytes(v / steps)}"
                                 for label, v in train.items()) + " per step")
    return lines


def _bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def _domain_table(result: RunResult, final_p: list[float]) -> list[str]:
    """Per domain, best final eval loss first: initial and final loss, final p, task metrics;
    the middle elided when there are many; then why any domain has no loss."""
    m, domains = result.metrics, result.domains.names
    final, per_domain = m.final_eval_losses, m.final_domain_eval_metrics
    rows = sorted((i for i, d in enumerate(domains) if finite(final[d])), key=lambda i: final[domains[i]])
    shown = rows if len(rows) <= SHOWN_DOMAINS else rows[:6] + [None] + rows[-6:]
    width = max(6, min(32, max(len(d) for d in domains)))
    lines = [f"  {'domain':<{width}}  initial    final  p_final" + "".join(f"  {name:>8}" for name in per_domain)]
    for i in shown:
        if i is None:
            lines.append(f"  ... {len(rows) - 12} more in the results JSON")
            continue
        d = domains[i]
        lines.append(f"  {d[:width]:<{width}}  {_f(m.initial_eval_losses[d]):>7}  {_f(final[d]):>7}  {final_p[i]:.4f}"
                     + "".join(f"  {_f(values[d]):>{max(8, len(name))}}" for name, values in per_domain.items()))
    if len(rows) < len(domains):
        q = result.eval_proportions
        no_eval = sum(1 for i, d in enumerate(domains) if not finite(final[d]) and q[i] == 0)
        unscored = len(domains) - len(rows) - no_eval
        if no_eval:
            lines.append(f"  ({no_eval} domains have no eval examples: q = 0, trained on but not scored)")
        if unscored:
            lines.append(f"  ({unscored} domains have none of the scored eval rows, drawn by original domains: "
                         "q renormalised over the rest)")
    return lines


def _metric_lines(initial: dict, final: dict) -> list[str]:
    """'name: initial a -> final b' per task metric; a constant one (a chance level) once."""
    lines = []
    for name, value in final.items():
        before = initial.get(name)
        if before is not None and before != value:
            lines.append(f"{name}: initial {_f(before)} -> final {_f(value)}")
        else:
            lines.append(f"{name}: {_f(value)}")
    return lines


def _f(x) -> str:
    return f"{x:.4f}" if finite(x) else "nan"
