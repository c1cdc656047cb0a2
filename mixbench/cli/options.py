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

from mixbench.cli.exit_codes import exit_codes
from mixbench.config import TrainConfig, option
from mixbench.data.datafile import choices
from mixbench.errors import MixbenchError

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
    """--task NAME or PATH and a data file's field flags (mixbench.data.datafile); the command
    receives them as one `task`, a TaskSpec, checked before the command starts."""
    return task_options(default="champ")(fn)


def task_options(*, default: str | None) -> Decorator:
    """As `task_option`, with another default for --task (None: the command gets `task` None
    when --task is not given)."""
    fields = choices()
    decorators = [click.option("--task", "task_name", default=default, show_default=default is not None,
                               help="Task name (see `mixbench list`), or the path of a data file of your own: "
                                    "JSONL, CSV, TSV, Parquet, or a folder saved by a Hugging Face dataset's "
                                    "save_to_disk (docs/data.md).")]
    decorators += [click.option(f"--{option(f.name)}", f"file_{f.name}", metavar=f.metadata["metavar"], default=None,
                                type=float if f.name == "eval_fraction" else str,
                                help=f"Data file: {f.metadata['help']}") for f in fields]

    def gather(fn):
        @functools.wraps(fn)   # keeps the options declared below this decorator
        @exit_codes            # a bad --task is bad input, said before the command starts
        def command(*args, **kwargs):
            from mixbench.experiments.task_spec import TaskSpec

            name = kwargs.pop("task_name")
            given = {f.name: kwargs.pop(f"file_{f.name}") for f in fields}
            if name is None:
                flags = [f"--{option(k)}" for k, v in given.items() if v is not None]
                if flags:
                    raise MixbenchError(f"{', '.join(flags)}: for a data file, given as --task PATH")
                return fn(*args, task=None, **kwargs)
            return fn(*args, task=TaskSpec.parse(name, **given), **kwargs)
        return command

    return lambda fn: _compose(decorators)(gather(fn))


def embedder_option(fn):
    return click.option("--embedder", default="minilm", show_default=True,
                        help="Embedder for regrouping (see `mixbench list`).")(fn)


def k_choice_options(fn):
    """--k-rule, --min-cluster-size, --collapse-duplicates: how Regroup picks its k. The command
    receives them as one `k_choice` (mixbench.regroup.KChoice), checked before it starts."""
    from mixbench.regroup.spec import DEFAULT_K_RULE

    decorators = [
        click.option("--k-rule", default=DEFAULT_K_RULE, show_default=True, metavar="RULE",
                     help="How Regroup picks k among those swept (see `mixbench list`): silhouette (the paper's), "
                          "first-peak, kneedle, davies-bouldin, calinski-harabasz, gap."),
        click.option("--min-cluster-size", type=int, default=1, show_default=True, metavar="N",
                     help="Regroup passes over any k that leaves a cluster with fewer than N training examples."),
        click.option("--collapse-duplicates", type=float, default=None, metavar="COSINE",
                     help="Before clustering, count training texts whose embeddings are at least this cosine-similar "
                          "as one (e.g. 0.95) [off]."),
    ]

    def gather(fn):
        @functools.wraps(fn)   # keeps the options declared below this decorator
        @exit_codes            # a bad choice is bad input, said before the command starts
        def command(*args, **kwargs):
            from mixbench.regroup.spec import KChoice

            choice = KChoice(rule=kwargs.pop("k_rule"), min_cluster_size=kwargs.pop("min_cluster_size"),
                             collapse=kwargs.pop("collapse_duplicates"))
            choice.check()
            return fn(*args, k_choice=choice, **kwargs)
        return command

    return _compose(decorators)(gather(fn))


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
    from mixbench.regroup.stages import bars_allowed

    progress = bars_allowed(progress)   # TQDM_DISABLE turns off every bar, mixbench's own as well
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
