"""The shipped slice of the corpus: the windows the recipe's first steps draw, and the scored
held-out windows, at their places among the corpus's windows.

With it `mixbench pretrain --steps N` (N up to the slice's steps) replays the base's first
steps on any machine, without the Debian packages: every other window is a placeholder, never
drawn in those steps, and the sampler, which only sees how many windows there are, draws the
same rows. The file is gzip'd JSON written without a timestamp, so it is the same bytes each time.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from mixbench.errors import MixbenchError
from mixbench.experiments.pretrain.corpus import windows_as_task
from mixbench.task import TaskData

FORMAT = "mixbench-corpus-slice"


def write(path: Path, *, steps: int, train: list[str], evaluation: list[str], train_rows, eval_rows,
          corpus_sha256: dict) -> None:
    payload = {"format": FORMAT, "steps": steps, "corpus_sha256": corpus_sha256,
               "train_windows": len(train), "eval_windows": len(evaluation),
               "train": {str(r): train[r] for r in sorted(set(int(r) for r in train_rows))},
               "eval": {str(r): evaluation[r] for r in sorted(set(int(r) for r in eval_rows))}}
    raw = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    with open(path, "wb") as handle, gzip.GzipFile(fileobj=handle, mode="wb", mtime=0, filename="") as out:
        out.write(raw)


def read(path: Path) -> dict:
    try:
        with gzip.open(path, "rb") as handle:
            payload = json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise MixbenchError(f"cannot read the corpus slice {path}: {exc}") from None
    if payload.get("format") != FORMAT:
        raise MixbenchError(f"{path} is not a mixbench corpus slice")
    return payload


def task_data(payload: dict) -> TaskData:
    """The corpus's windows as the slice has them: the slice's text where it has it, else empty."""
    train = [""] * payload["train_windows"]
    evaluation = [""] * payload["eval_windows"]
    for row, text in payload["train"].items():
        train[int(row)] = text
    for row, text in payload["eval"].items():
        evaluation[int(row)] = text
    return windows_as_task(train, evaluation)
