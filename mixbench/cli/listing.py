"""`mixbench list`: every strategy, embedder and task, with where each comes from; with --task,
that one task's data."""

from __future__ import annotations

import click

from mixbench.cli.exit_codes import exit_codes
from mixbench.cli.options import task_options
from mixbench.config import option


@click.command("list", short_help="List strategies, embedders, k rules and tasks, or one task's data.")
@task_options(default=None)
@exit_codes
def list_cmd(task):
    """List strategies, embedders and tasks, with where each comes from; with --task (a name, or a data
    file and its field flags), that task's data: its rows per domain and split."""
    from mixbench import registry

    if task is not None:
        click.echo("\n".join(_task_data_lines(task)))
        return
    for title, reg, describe in (("strategies", registry.strategies, _strategy_lines),
                                 ("embedders", registry.embedders, _embedder_lines),
                                 ("k rules (--k-rule)", registry.k_rules, _embedder_lines),
                                 ("tasks", registry.tasks, _task_lines)):
        click.echo(f"{title}:")
        for entry in reg.entries():
            click.echo("\n".join(_guarded(describe, entry)))


def _guarded(describe, entry, width: int = 100) -> list[str]:
    """`describe(entry)`, or, when the plugin's own code raises (or exits) while describing itself,
    or does not answer within the plugin time limit, its name, origin and what went wrong: one
    broken or hanging plugin never hides (or holds up) the others."""
    from mixbench.registry import TIMEOUT_ENV, plugin_timeout
    from mixbench.timelimit import call_in_time

    try:
        if entry.builtin:
            return describe(entry)
        return call_in_time(lambda: describe(entry), plugin_timeout(), f"describing itself (the limit is "
                            f"${TIMEOUT_ENV})")
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - plugin code: summary(), a task's status(), ...
        return (_wrap(f"{entry.name:<12} cannot describe itself: {type(exc).__name__}: {exc}", "  ", _INDENT, width)
                + _wrap(_keep_whole(f"[{entry.origin}]"), _INDENT, _INDENT, width))


def _embedder_lines(entry, width: int = 100) -> list[str]:
    """One embedder or k rule for `mixbench list`: its whole summary and its origin, wrapped to `width`."""
    return _wrap(f"{entry.name:<12} {entry.obj.summary()}  {_keep_whole(f'[{entry.origin}]')}", "  ", _INDENT, width)


def _strategy_lines(entry, width: int = 100) -> list[str]:
    """One strategy for `mixbench list`: summary; its defaults; its source and origin."""
    cls = entry.obj
    params = " ".join(f"--{option(k)} {v}" for k, v in cls.param_defaults().items())
    return (_wrap(f"{entry.name:<12} {cls.summary()}", "  ", _INDENT, width)
            + _wrap(f"defaults: {params or 'no hyperparameters'}", _INDENT, _INDENT + "  ", width)
            + _wrap(f"source: {getattr(cls, 'source', '') or 'not given'}  {_keep_whole(f'[{entry.origin}]')}",
                    _INDENT, _INDENT + "  ", width))


_INDENT = " " * 15   # under the summary, past the 12-character name column
_KEEP = "\N{NO-BREAK SPACE}"   # textwrap never breaks there


def _keep_whole(text: str) -> str:
    """`text` kept on one line by the wrapping (an origin moves to a new line whole)."""
    return text.replace(" ", _KEEP)


def _wrap(text: str, first: str, rest: str, width: int) -> list[str]:
    import textwrap

    lines = textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest,
                          break_long_words=False, break_on_hyphens=False)
    return [line.replace(_KEEP, " ") for line in lines]


def _task_lines(entry, width: int = 100) -> list[str]:
    """One task for `mixbench list`: summary; modality, original domains, default model and budget;
    data status. Each wrapped to `width` so a long missing-data message stays readable."""

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
    return (_wrap(f"{entry.name:<12} {entry.obj.summary()}", "  ", _INDENT, width)
            + _wrap(f"{facts}, {budget.steps} steps, K={budget.steps_per_round}  {_keep_whole(f'[{entry.origin}]')}",
                    _INDENT, _INDENT, width)
            + _wrap(f"status: {task.status()}", _INDENT, _INDENT + "  ", width))


def _task_data_lines(spec) -> list[str]:
    """One task loaded: what it is, where its data is, and its rows per domain and split."""
    task = spec.create()
    info, data, budget = task.info(), task.load(), task.budget
    width = max([len("domain"), *map(len, data.domains)])
    lines = [f"{spec.name}: {info.description}", f"  source: {info.source}",
             f"  version {info.version}; {info.modality}, model {budget.model}, {budget.steps} steps, "
             f"K={budget.steps_per_round}, {budget.eval_per_domain} eval rows scored per domain",
             f"  {'domain':<{width}}  {'train':>7}  {'eval':>6}"]
    for domain, n_train, n_eval in zip(data.domains, data.sizes("train"), data.sizes("eval")):
        lines.append(f"  {domain:<{width}}  {n_train:>7}  {n_eval:>6}")
    unseen = data.unseen_eval_domains()
    lines.append(f"  {'total':<{width}}  {len(data.train):>7}  {len(data.eval):>6}"
                 + (f"  ({len(unseen)} eval domains have no train rows)" if unseen else ""))
    return lines
