"""`mixbench list`: every strategy, embedder and task, with where each comes from."""

from __future__ import annotations

import click

from mixbench.cli.errors import user_errors
from mixbench.config import option


@click.command("list")
@user_errors
def list_cmd():
    """List strategies, embedders and tasks, with where each comes from."""
    from mixbench import registry

    click.echo("strategies:")
    for entry in registry.strategies.entries():
        params = " ".join(f"--{option(k)} {v}" for k, v in entry.obj.param_defaults().items())
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
