"""The one way mixbench writes a file: into a temporary file beside it, then renamed over it.

A reader never sees half a file, and a crash part-way leaves whatever was there before. Results
JSON, reports, cluster assignments and every cache entry are written through here.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from mixbench.errors import MixbenchError


class UnwritableOutput(MixbenchError, OSError):
    """A file mixbench must write cannot be: shown as one line (and still an OSError to callers,
    such as the cache, for which a failed write is only a warning)."""


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write` on a temporary binary file in `path`'s folder, then rename it to `path`."""
    path = Path(path)
    check_not_a_folder(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UnwritableOutput(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        # mkstemp makes the file private (0600); a result or cache file gets the mode any new file would.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, MixbenchError):
            raise UnwritableOutput(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def check_not_a_folder(path: Path) -> None:
    """A file about to be written must not be a folder already (os.replace would fail only at the end)."""
    if Path(path).is_dir():
        raise UnwritableOutput(f"cannot write {path}: a folder of that name is in the way")


def _read_umask() -> int:
    # The only way to read the umask is to set it: done once, at import, before any thread writes.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def check_writable(directory: Path, *files: Path) -> None:
    """Raise MixbenchError now, before any work, if files cannot be written into `directory`, or
    if one of `files` (paths about to be written) is a folder."""
    for path in files:
        check_not_a_folder(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UnwritableOutput(f"cannot write results to {directory}: {exc.strerror or exc}") from None


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: Path, payload) -> None:
    """Indented JSON; NaN and inf are written as null (JSON has neither)."""
    write_text(path, json.dumps(json_safe(payload), indent=2, allow_nan=False) + "\n")


def json_safe(value):
    """NaN and inf become None; numpy scalars and arrays become Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
