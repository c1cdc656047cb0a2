"""The `mixbench` command line. Heavy imports (torch, mlflow) happen inside commands."""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import warnings
from pathlib import Path

import click

from mixbench.errors import MixbenchError

EXIT_USAGE = 2


def _user_errors(fn):
    """A MixbenchError (bad input, missing data) becomes one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MixbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)

    return wrapper


def _setup_logging() -> None:
    class TqdmHandler(logging.Handler):  # log lines must not tear the progress bar
        def emit(self, record):
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)

    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    # Task loaders report every skipped file at INFO: only their warnings reach the terminal.
    for name, level in (("mixbench", logging.INFO), ("algorithms", logging.INFO), ("tasks", logging.WARNING)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mixbench")
def cli():
    """mixbench: compare data-mixing strategies (R&B and baselines) on one shared trainer."""
    _setup_logging()


@cli.command("list")
@_user_errors
def list_cmd():
    """List strategies and tasks, with where each comes from."""
    from mixbench import registry

    click.echo("strategies:")
    for entry in registry.strategies.entries():
        params = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in _defaults(entry.obj).items())
        click.echo(f"  {entry.name:<12} {entry.obj.summary()}  ({params or 'no hyperparameters'})"
                   f"  [{entry.origin}]")
    click.echo("embedders:")
    for entry in registry.embedders.entries():
        click.echo(f"  {entry.name:<12} {entry.obj.summary()}  [{entry.origin}]")
    click.echo("tasks:")
    for entry in registry.tasks.entries():
        click.echo("\n".join(_task_lines(entry)))


def _task_lines(entry, width: int = 100) -> list[str]:
    """One task for `mixbench list`: summary; modality, original domains, default model and budget;
    data status. Each wrapped to `width` so a long missing-data message stays readable."""
    import textwrap

    task = entry.obj()
    budget = task.budget
    try:
        info = task.info()
        domains = (f"{info.original_domains} original domains" if info.original_domains is not None
                   else "original domains from data")
        model = f"model {budget.model}" + (f" ({budget.image_size}×{budget.image_size} images)"
                                           if info.modality == "image-text" else "")
        facts = f"{info.modality}, {domains}, {model}"
    except Exception as exc:  # noqa: BLE001 - one plugin's broken metadata must not hide the others
        facts = f"metadata unavailable ({type(exc).__name__}: {exc})"
    indent = " " * 15   # under the summary, past the 12-character name column
    keep = "\N{NO-BREAK SPACE}"   # textwrap never breaks there: the origin moves to a new line whole

    def wrap(text: str, first: str, rest: str) -> list[str]:
        lines = textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest,
                              break_long_words=False, break_on_hyphens=False)
        return [line.replace(keep, " ") for line in lines]

    origin = f"[{entry.origin}]".replace(" ", keep)
    return (wrap(f"{entry.name:<12} {entry.obj.summary()}", "  ", indent)
            + wrap(f"{facts}, {budget.steps} steps, K={budget.steps_per_round}  {origin}", indent, indent)
            + wrap(f"status: {task.status()}", indent, indent + "  "))


@cli.command("run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
             epilog="Strategy hyperparameters are passed as --NAME VALUE (e.g. --lam 3 for rnb); "
                    "`mixbench list` shows each strategy's.")
@click.option("--algo", required=True, help="Strategy name (see `mixbench list`).")
@click.option("--task", default="champ", show_default=True, help="Task name (see `mixbench list`).")
@click.option("--steps", type=int, help="Optimiser steps [task default].")
@click.option("--steps-per-round", type=int, help="K: steps between mixture updates [task default].")
@click.option("--batch-size", type=int, help="Examples per step [task default].")
@click.option("--seq-len", type=int, help="Tokens per example [task default].")
@click.option("--lr", type=float, help="Peak learning rate [task default].")
@click.option("--eval-per-domain", type=int, help="Eval examples per domain at round ends [task default].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--domains", "domains_spec", default=None,
              help="original, or regroup[:K] (K a number or START:STOP) [the strategy's default: "
                   "regroup for rnb, original for the baselines].")
@click.option("--embedder", default="minilm", show_default=True, help="Embedder used by --domains regroup.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--model", default=None,
              help="'gpt' (small GPT from scratch, text tasks), 'clip' (small dual encoder, image-text "
                   "tasks) or a local directory with an HF causal LM [the task's default].")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
              help="Results go to OUT/<task>/<algo>/<original|regroup>/seed<N>.json.")
@click.option("--mlflow/--no-mlflow", "use_mlflow", default=True, show_default=True,
              help="Log the run to MLflow (MLFLOW_TRACKING_URI, else ./mlflow.db).")
@click.option("--experiment", default="mixbench", show_default=True, help="MLflow experiment name.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.pass_context
@_user_errors
def run_cmd(ctx, algo, task, out_dir, use_mlflow, experiment, progress, seed, device, model,
            domains_spec, embedder, **budget):
    """Train once with one strategy on one task and report loss, mixture and overhead."""
    from mixbench import registry
    from mixbench.domains import DomainSpec
    from mixbench.run import RunRequest, execute

    strategy_cls = registry.strategies.get(algo)
    domains = DomainSpec.parse(domains_spec or strategy_cls.default_domains)
    embedder_obj = registry.embedders.create(embedder) if domains.method == "regroup" else None
    task_obj = registry.tasks.create(task)
    strategy = strategy_cls(**_parse_hyperparameters(algo, strategy_cls, ctx.args))
    try:
        strategy.check_params()
    except ValueError as exc:
        raise MixbenchError(str(exc)) from None
    request = RunRequest(algo=algo, strategy=strategy, task_name=task, task=task_obj, out_dir=out_dir,
                         use_mlflow=use_mlflow, experiment=experiment, progress=progress,
                         domains=domains, embedder_name=embedder, embedder=embedder_obj,
                         overrides=dict(budget, seed=seed, device=device, model=model))
    sys.exit(execute(request))


@cli.command("compare")
@click.option("--task", default="champ", show_default=True, help="Task name (see `mixbench list`).")
@click.option("--algos", required=True, help="Comma-separated strategies, e.g. stratified,rnb,dga.")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@click.option("--domains", "domains_specs", default=None,
              help="Comma-separated domain choices, e.g. original,regroup [each strategy's default].")
@click.option("--embedder", default="minilm", show_default=True, help="Embedder for regroup cells.")
@click.option("--steps", type=int, help="Optimiser steps [task default].")
@click.option("--steps-per-round", type=int, help="K [task default].")
@click.option("--batch-size", type=int, help="Examples per step [task default].")
@click.option("--eval-per-domain", type=int, help="Eval examples per domain [task default].")
@click.option("--device", default="auto", show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
              help="Cells go to OUT/<task>/<algo>/<domains>/seed<N>.json; the summary to OUT/<task>/summary.*")
@click.option("--mlflow/--no-mlflow", "use_mlflow", default=True, show_default=True)
@click.option("--experiment", default="mixbench-compare", show_default=True, help="MLflow experiment name.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@_user_errors
def compare_cmd(task, algos, seeds, domains_specs, embedder, out_dir, use_mlflow, experiment, progress, device,
                **budget):
    """Run strategies × domains × seeds on one task (resuming finished cells) and compare them."""
    import json

    from mixbench.compare import parse_list, parse_seeds, run_grid
    from mixbench.results import write_text
    from mixbench.summary import format_table, per_domain_table, summarize, to_markdown

    paths = run_grid(task_name=task, algos=parse_list(algos, "algos"),
                     domain_specs=parse_list(domains_specs, "domains") if domains_specs is not None else None,
                     seeds=parse_seeds(seeds), out_dir=out_dir, overrides=dict(budget, device=device),
                     embedder_name=embedder, hyperparameters={}, use_mlflow=use_mlflow, experiment=experiment,
                     progress=progress)
    results = [json.loads(p.read_text()) for p in paths]
    table = summarize(results)
    click.echo(format_table(table))
    base = out_dir / task / "summary"
    table.to_csv(base.with_suffix(".csv"), index=False)
    per_domain_table(results).to_csv(base.parent / "summary_per_domain.csv")
    write_text(base.with_suffix(".md"), to_markdown(table) + "\n")
    click.echo(f"summary: {base.with_suffix('.csv')}, {base.with_suffix('.md')}; per domain: "
               f"{base.parent / 'summary_per_domain.csv'}")


@cli.command("report")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Where report.md, report.html and the PNGs go [DIRECTORY/report].")
@_user_errors
def report_cmd(directory, out_dir):
    """Render a Markdown + HTML report with plots from the results under DIRECTORY."""
    from mixbench.report import render

    md, html = render(directory, out_dir or directory / "report")
    click.echo(f"report: {md}\n        {html}")


@cli.command("regroup")
@click.option("--task", default="champ", show_default=True, help="Task name (see `mixbench list`).")
@click.option("--k", "k_spec", default="2:64", show_default=True,
              help="k values to sweep: START:STOP[:STEP], or one k to fix it.")
@click.option("--embedder", default="minilm", show_default=True, help="Embedder (see `mixbench list`).")
@click.option("--sample", type=int, default=None,
              help="Fit k-means on a seeded sample of N training examples (all are still assigned).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
              help="The assignment goes to OUT/<task>/regroup/<embedder>-seed<N>.json (+ .png).")
@click.option("--mlflow/--no-mlflow", "use_mlflow", default=True, show_default=True)
@click.option("--experiment", default="mixbench-regroup", show_default=True, help="MLflow experiment name.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@_user_errors
def regroup_cmd(task, k_spec, embedder, sample, seed, out_dir, use_mlflow, experiment, progress):
    """Regroup a task into semantic domains: embed, k-means over a k range, keep the best silhouette."""
    from mixbench import registry
    from mixbench.clustering import parse_k
    from mixbench.regroup import regroup
    from mixbench.regroup_report import report
    from mixbench.run import check_writable

    try:
        ks = parse_k(k_spec)
    except ValueError as exc:
        raise MixbenchError(str(exc)) from None
    task_obj = registry.tasks.create(task)
    embedder_obj = registry.embedders.create(embedder)
    check_writable(out_dir / task / "regroup")
    data = task_obj.load()
    grouping = regroup(data, task_obj.info(), embedder_obj, ks, seed=seed, sample=sample, progress=progress)
    report(task, data, grouping, out_dir=out_dir, seed=seed, embedder_name=embedder, use_mlflow=use_mlflow,
           experiment=experiment)


def _defaults(strategy_cls) -> dict:
    return {
        p.name: p.default
        for p in inspect.signature(strategy_cls.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _parse_hyperparameters(algo: str, strategy_cls, args: list[str]) -> dict:
    """Turn leftover `--name value` / `--name=value` arguments into the strategy's keywords,
    converted to the type of each default."""
    defaults = _defaults(strategy_cls)
    known = ", ".join(f"--{k.replace('_', '-')}" for k in defaults) or "none"
    params, i = {}, 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise MixbenchError(f"unexpected argument {arg!r}")
        name, _, value = arg[2:].partition("=")
        if not _:
            if i + 1 >= len(args):
                raise MixbenchError(f"option --{name} needs a value")
            value, i = args[i + 1], i + 1
        key = name.replace("-", "_")
        if key not in defaults:
            raise MixbenchError(f"no such option --{name} (run options: see --help; {algo} hyperparameters: {known})")
        params[key] = _convert(name, value, defaults[key])
        i += 1
    return params


def _convert(name: str, value: str, default):
    kind = type(default) if default is not None and default is not inspect.Parameter.empty else str
    try:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return value.lower() in ("true", "1", "yes")
        return kind(value)
    except ValueError:
        raise MixbenchError(f"--{name} expects a {kind.__name__}, got {value!r}") from None


def _register_theory() -> None:
    # The theory checks live in their own package (theory/); their command joins the CLI here.
    from theory.cli import theory_cmd

    cli.add_command(theory_cmd)


_register_theory()


def main() -> None:
    cli()
