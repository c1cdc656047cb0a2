"""Shared plumbing of the file-backed task adapters: locations, versions, splits, prompts.

Locations. A task's data location is the keyword it takes (`path=`, or `source=` for evals), else
the environment variable it names (MIXBENCH_DOLLY, MIXBENCH_NATINST, MIXBENCH_S1,
MIXBENCH_EVALS_WHEEL, ...), else the folder ``$MIXBENCH_DATA/<name>`` (MIXBENCH_DATA defaults to
~/.cache/mixbench/data): `resolve` below, used by the base classes in tasks/local.py. mixbench never
downloads data; a hub id is only used when one is configured and the `datasets` library is installed.

Splits are seeded by the task's `split_seed`, never by the run's seed, and drawn per stratum
(category, source or task) with a generator seeded by (split_seed, stratum name), so one stratum's
split does not move when another stratum changes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import numpy as np

from mixbench.data.rows import stable_hash
from mixbench.task import TaskDataError

T = TypeVar("T")

DATA_ENV = "MIXBENCH_DATA"


def data_root() -> Path:
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "mixbench" / "data").expanduser()


def resolve(path: str | os.PathLike | None, env: str, folder: str) -> Path:
    """The data location: the keyword if given, else $env, else $MIXBENCH_DATA/folder."""
    if path is not None:
        return Path(path).expanduser()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return data_root() / folder


def put_message(what: str, where: Path, env: str) -> str:
    """The one line that says how to provide missing data."""
    return f"put {what} at {where} (or set {env})"


def data_files(path: Path, suffixes: Iterable[str]) -> list[Path]:
    """`path` itself if it is a file, else the files under it with one of `suffixes`, sorted."""
    suffixes = tuple(suffixes)
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes)
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


# -- versions ------------------------------------------------------------------------------------

_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a file's content, remembered per (path, size, mtime) for this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def files_version(paths: Iterable[Path]) -> str:
    """A short content hash of the files a task reads (names and bytes), safe in a folder name."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(f"{path.name}\0{file_digest(path)}\0".encode())
    return "sha-" + digest.hexdigest()[:12]


def git_revision(root: Path) -> str | None:
    """The commit a git checkout at `root` is on, if it is one (read from .git, no git needed)."""
    git = root / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head[:12] or None
        ref = head.split(":", 1)[1].strip()
        if (git / ref).is_file():
            return (git / ref).read_text().strip()[:12] or None
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except OSError:
        return None
    return None


# -- splits --------------------------------------------------------------------------------------

def check_fractions(name: str, train_fraction: float, eval_fraction: float) -> None:
    if not (0 < train_fraction < 1 and 0 < eval_fraction < 1 and train_fraction + eval_fraction <= 1 + 1e-12):
        raise TaskDataError(f"{name}: need 0 < train_fraction, eval_fraction and train_fraction + eval_fraction "
                            f"<= 1, got {train_fraction} and {eval_fraction}")


def split_by_stratum(items: list[T], stratum: Callable[[T], str], *, train_fraction: float,
                     eval_fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """Per stratum: a seeded shuffle, the first round(train_fraction·n) to train, the next
    round(eval_fraction·n) to eval, the rest unused (the paper's validation share). A stratum with
    leftovers but a zero eval share still gives one example to eval, so every stratum is measured.
    Within each split the input order is kept."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[stratum(item)].append(i)
    train_idx, eval_idx = [], []
    for name in sorted(groups):
        members = groups[name]
        n = len(members)
        order = np.random.default_rng([seed, stable_hash(name)]).permutation(n)
        n_train = min(n, _round_half_up(train_fraction * n))
        n_eval = min(n - n_train, _round_half_up(eval_fraction * n))
        if n_eval == 0 and n > n_train:
            n_eval = 1
        train_idx += [members[j] for j in order[:n_train]]
        eval_idx += [members[j] for j in order[n_train:n_train + n_eval]]
    return [items[i] for i in sorted(train_idx)], [items[i] for i in sorted(eval_idx)]


def seeded_subset(names: list[str], size: int | None, seed: int) -> list[str]:
    """`size` of `names` chosen with a generator seeded by `seed` (all of them if size is None), sorted."""
    names = sorted(names)
    if size is None or size >= len(names):
        return names
    chosen = np.random.default_rng(seed).choice(len(names), size=size, replace=False)
    return sorted(names[i] for i in chosen)


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5 + 1e-9))


# -- formatting ----------------------------------------------------------------------------------

def instruction_prompt(instruction: str, context: str = "", *, context_label: str = "Input",
                       extra: Iterable[str] = ()) -> str:
    """The prompt of an instruction example; the model's response (the loss) follows it."""
    parts = [f"### Instruction:\n{instruction.strip()}", *extra]
    if context and context.strip():
        parts.append(f"### {context_label}:\n{context.strip()}")
    parts.append("### Response:\n")
    return "\n\n".join(parts)


def text_field(record: dict, key: str, *, required: bool = True) -> str:
    """A string field of a record: KeyError when required and missing, TypeError when not text."""
    value = record.get(key)
    if value is None:
        if required:
            raise KeyError(key)
        return ""
    if not isinstance(value, str):
        raise TypeError(f"field {key!r} is a {type(value).__name__}, not text")
    return value


# -- optional hub access -------------------------------------------------------------------------

def hub_available() -> bool:
    try:
        return importlib.util.find_spec("datasets") is not None
    except (ImportError, ValueError):  # a half-imported or stub module
        return False


def hub_rows(hub_id: str, revision: str | None = None, split: str = "train") -> list[dict]:
    """Rows of a Hugging Face dataset via the `datasets` library (only when it is installed)."""
    if not hub_available():
        raise TaskDataError(f"loading {hub_id} from the hub needs the datasets library (pip install datasets)")
    import datasets

    try:
        dataset = datasets.load_dataset(hub_id, split=split, revision=revision)
    except Exception as exc:  # noqa: BLE001 - any hub/network failure becomes one line
        raise TaskDataError(f"could not load {hub_id} from the Hugging Face hub: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    return [dict(row) for row in dataset]
