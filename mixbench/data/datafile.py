"""A user's data file as a task: the file, and which of its fields make the examples.

`--task PATH` names the file (JSONL, CSV, TSV, Parquet, or a folder saved by a Hugging Face
dataset's `save_to_disk`); the fields below say what is read from it. The command line's options
are generated from these fields (mixbench/cli/options.py), and `add_arguments` declares the same
flags for argparse (the scripts in examples/), so both take one set of flags with one meaning.

What each choice means:

* the text: `text_field` (the loss on the whole text), or `prompt_field` and `response_field`
  (the loss on the response only, the prompt read before it, joined as they stand in the file);
  for image-text, `image_field` (a picture's path, relative to the file's folder, or its bytes as a
  saved dataset or Parquet file stores an image) with `text_field` as the caption;
* the domains: `domain_field`; without one every row is in one domain, and the runs regroup;
* the eval rows, in this order: `split_field` (values train and eval, or validation; other
  values, such as test, are left out), else `eval_file` (every row of a second file, read with the
  same fields), else `eval_fraction` (a share of the rows chosen by a hash of each row's text, so
  the split never moves with a run's seed and a repeated text is always on one side). With none of
  the three given, a field named `split` is the split when the file has one, else 10 % of the rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from mixbench.config import option
from mixbench.task import TaskDataError

DEFAULT_SPLIT_FIELD = "split"      # the split, when the file has a field of that name and no other choice is made
DEFAULT_EVAL_FRACTION = 0.1


def _choice(help: str, *, metavar: str = "FIELD"):
    return field(default=None, metadata={"help": help, "metavar": metavar})


@dataclass(frozen=True)
class DataFile:
    """A data file and its field choices; a combination that cannot work is refused in one line."""

    path: str   # made absolute: a cell running in its own process reads the same file
    text_field: str | None = _choice("The field holding the text (the loss is on all of it); for image-text, the "
                                     "caption.")
    prompt_field: str | None = _choice("The field holding the prompt (read, not scored); with --response-field.")
    response_field: str | None = _choice("The field holding the response (the loss is on it); with --prompt-field.")
    domain_field: str | None = _choice("The field naming each row's domain [none: one domain, and runs regroup].")
    split_field: str | None = _choice("The field saying train or eval (or validation) per row [split, when the file "
                                      "has it].")
    eval_file: str | None = _choice("A second file whose rows are all eval rows, read with the same fields.",
                                    metavar="PATH")
    eval_fraction: float | None = _choice(f"The share of rows held out for eval, chosen by a hash of each row's text "
                                          f"[{DEFAULT_EVAL_FRACTION}].", metavar="F")
    image_field: str | None = _choice("Image-text: the field holding each picture's path (relative to the file's "
                                      "folder) or bytes; the caption is --text-field.")

    def __post_init__(self):
        object.__setattr__(self, "path", _absolute(self.path))
        if self.eval_file is not None:
            object.__setattr__(self, "eval_file", _absolute(self.eval_file))
        for choice in self.field_choices():
            value = getattr(self, choice)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TaskDataError(f"--{option(choice)} must name a field, got {value!r}")
        pair = (self.prompt_field, self.response_field)
        if self.text_field is not None and any(f is not None for f in pair):
            raise TaskDataError("give --text-field, or --prompt-field and --response-field, not both")
        if self.text_field is None and None in pair:
            given = next((f"--{option(n)}" for n, f in zip(("prompt_field", "response_field"), pair) if f), None)
            raise TaskDataError(f"{given} needs its pair (--prompt-field and --response-field)" if given else
                                f"{self.path}: say which field holds the text: --text-field, or --prompt-field and "
                                "--response-field")
        if self.image_field is not None and self.text_field is None:
            raise TaskDataError("--image-field takes its caption from --text-field (not a prompt and response)")
        ways = [f"--{option(n)}" for n in ("split_field", "eval_file", "eval_fraction") if getattr(self, n) is not None]
        if len(ways) > 1:
            raise TaskDataError(f"{' and '.join(ways)}: the eval rows are chosen one way, by --split-field, "
                                "--eval-file or --eval-fraction")
        if self.eval_fraction is not None and not (isinstance(self.eval_fraction, (int, float))
                                                   and 0 < self.eval_fraction < 1):
            raise TaskDataError(f"--eval-fraction must be between 0 and 1, got {self.eval_fraction!r}")

    @staticmethod
    def field_choices() -> tuple[str, ...]:
        """The choices that name a field of the file."""
        return ("text_field", "prompt_field", "response_field", "domain_field", "split_field", "image_field")

    @property
    def label(self) -> str:
        return label(self.path)

    @property
    def modality(self) -> str:
        return "text" if self.image_field is None else "image-text"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> DataFile:
        return cls(**values)


def label(path: str | os.PathLike) -> str:
    """How results and caches name the task of a data file: its name with its format after a dash
    (mine.jsonl: mine-jsonl; a saved dataset's folder mine: mine-hf). Never the file's own name, so
    results written beside the data (--out .) never land on it or inside it."""
    path = Path(path)
    name = f"{path.name}-hf" if path.is_dir() else f"{path.stem}-{path.suffix.lstrip('.') or 'data'}"
    return "".join(c if c.isalnum() or c in "+-._" else "_" for c in name)


def choices() -> list[dataclasses.Field]:
    """The field choices and eval options, in the order the flags are shown (the path is --task)."""
    return [f for f in dataclasses.fields(DataFile) if f.name != "path"]


def add_arguments(parser: argparse.ArgumentParser, *, task_default: str | None = None) -> None:
    """The same flags for an argparse parser: --task PATH and the choices above. `from_arguments`
    reads them back."""
    parser.add_argument("--task", default=task_default, metavar="PATH",
                        help="The data file: JSONL, CSV, TSV, Parquet or a saved Hugging Face dataset folder"
                             + (f" [{task_default}]" if task_default else ""))
    for f in choices():
        parser.add_argument(f"--{option(f.name)}", dest=f.name, metavar=f.metadata["metavar"], default=None,
                            type=float if f.name == "eval_fraction" else str, help=f.metadata["help"])


def from_arguments(args: argparse.Namespace) -> DataFile:
    """The DataFile of parsed `add_arguments` flags."""
    return DataFile(path=args.task, **{f.name: getattr(args, f.name) for f in choices()})


def _absolute(path) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(path)))
