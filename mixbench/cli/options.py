"""Options more than one command takes, declared once.

The training settings are generated from `mixbench.config.TrainConfig`: one option per field,
with the field's help, defaulting to the task's own value.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
import typing
from collections.abc import Callable
from pathlib import Path

import click

from mixbench.config import TrainConfig, option

Decorator = Callable[[Callable], Callable]


def _compose(decorators: list[Decorator]) -> Decorator:
    def apply(fn):
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn
    return apply


def config_options(*, exclude: tuple[str, ...] = ()) -> Decorator:
    """--steps, --steps-per-round, ... --grad-clip; the command receives them in a dict `config`
    (None where the user gave none), to pass to `task.budget.override(**config)`."""
    types = typing.get_type_hints(TrainConfig)
    fields = [f for f in dataclasses.fields(TrainConfig) if f.name not in exclude]
    decorators = [click.option(f"--{option(f.name)}", f"config_{f.name}", type=types[f.name], default=None,
                               help=f"{f.metadata['help']} [task default]") for f in fields]

    def gather(fn):
        @functools.wraps(fn)   # keeps the options declared below this decorator
        def command(*args, **kwargs):
            config = {f.name: kwargs.pop(f"config_{f.name}") for f in fields}
            return fn(*args, config=config, **kwargs)
        return command

    return lambda fn: _compose(decorators)(gather(fn))


def task_option(fn):
    return click.option("--task", default="champ", show_default=True, help="Task name (see `mixbench list`).")(fn)


def embedder_option(fn):
    return click.option("--embedder", default="minilm", show_default=True,
                        help="Embedder for regrouping (see `mixbench list`).")(fn)


def output_options(*, experiment: str, out_help: str) -> Decorator:
    """--out, --mlflow/--no-mlflow, --experiment, --progress/--no-progress."""
    return _compose([
        click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
                     help=out_help),
        click.option("--mlflow/--no-mlflow", "use_mlflow", default=True, show_default=True,
                     help="Log to MLflow (MLFLOW_TRACKING_URI, else ./mlflow.db)."),
        click.option("--experiment", default=experiment, show_default=True, help="MLflow experiment name."),
        click.option("--progress/--no-progress", default=True, show_default=True, callback=_quiet_unless_progress,
                     help="Progress bars on stderr (the libraries' own too)."),
    ])


def checkpoint_options(fn):
    """--checkpoint-every, --keep-checkpoints."""
    return _compose([
        click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Also checkpoint every N steps within a round (a checkpoint is written at every round "
                          "end, and when Ctrl-C or SIGTERM stops the run) [round ends only]."),
        click.option("--keep-checkpoints", type=click.IntRange(min=0), default=1, show_default=True, metavar="N",
                     help="Keep the last N checkpoints (the latest, then .ckpt.1, .ckpt.2, ...); 0 writes none."),
    ])(fn)


def _quiet_unless_progress(ctx, param, progress: bool) -> bool:
    """--no-progress silences the libraries mixbench drives as well as its own bars: the model
    loading bars of transformers / huggingface_hub and MLflow's INFO lines."""
    if not progress:
        quiet_libraries()
    return progress


def quiet_libraries() -> None:
    # Both libraries read this when imported (the commands import them later, lazily)...
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    # ...as tqdm reads its own switch when imported, for the bars libraries draw with plain tqdm
    # (transformers' GGUF conversion of SmolLM2). Set even when tqdm is imported already: the
    # image decoder's bar, whose caller (a task) knows nothing of --no-progress, reads it per call,
    # and worker processes import tqdm afresh.
    os.environ["TQDM_DISABLE"] = "1"
    # ...and one already imported is told directly.
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    # MLflow sets its logger's level from this when imported (INFO without it); its database
    # migrations log through alembic.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
