"""`mixbench pretrain`: build the pretrained base that `--regime finetune` starts from."""

from __future__ import annotations

from pathlib import Path

import click

from mixbench.cli.exit_codes import exit_codes


@click.command("pretrain", short_help="Build the pretrained base of --regime finetune.")
@click.option("--steps", type=int, default=None, metavar="N",
              help="Stop after step N of the recipe (its schedule unchanged), checkpointed; the next call goes "
                   "on from there [the recipe's end].")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("runs/pretrain"),
              show_default=True, help="Checkpoint, progress record and, at the end, base.pt and recipe.json.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="A progress bar on stderr.")
@exit_codes
def pretrain_cmd(steps, out_dir, progress):
    """Pretrain the text tasks' byte-level GPT on general English (WordNet glosses and the Python
    documentation, from Debian packages) with the recipe in mixbench/models/weights/recipe.json.
    Resumable: rerun the same command after an interrupt. Deterministic on a CPU. Without the
    Debian packages, the shipped slice of the corpus replays the recipe's first steps."""
    from mixbench.experiments.pretrain.run import pretrain

    outcome = pretrain(out_dir, steps=steps, progress=progress)
    last = f", last loss {outcome.train_losses[-1]:.4f}" if outcome.train_losses else ""
    if outcome.finished:
        click.echo(f"base written: {out_dir / 'base.pt'} ({outcome.step} steps{last}); recipe: "
                   f"{out_dir / 'recipe.json'}")
    else:
        click.echo(f"stopped after step {outcome.step}{last}; checkpoint {out_dir / 'pretrain.ckpt'} "
                   f"(rerun to go on)")
