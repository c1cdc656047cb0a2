"""The cache folder ($MIXBENCH_CACHE, else ~/.cache/mixbench) and its numpy archives.

A cache entry is only ever a saving: one that is missing, truncated or otherwise unreadable is a
miss (warned about when it exists), recomputed by the caller and replaced atomically; one that
cannot be written costs the next run the work again, nothing more.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from mixbench.storage.atomic import write_atomic

log = logging.getLogger(__name__)

CACHE_ENV = "MIXBENCH_CACHE"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mixbench").expanduser()


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """Every array of the archive at `path`, or None when it is absent or cannot be read."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            return {name: stored[name] for name in stored.files}
    except Exception as exc:  # noqa: BLE001 - truncated zips raise BadZipFile, EOFError, zlib.error...
        log.warning("cache entry %s cannot be read (%s: %s); computing it again", path, type(exc).__name__, exc)
        return None


def save_npz(path: Path, **arrays) -> None:
    try:
        write_atomic(path, lambda f: np.savez(f, **arrays))
    except OSError as exc:   # write_atomic's one-line UnwritableOutput names the path already
        log.warning("%s (a cache entry: the next run computes it again)", exc)
