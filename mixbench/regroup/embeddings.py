"""Embeddings of a task's texts, streamed in chunks to memory-mapped files in the cache.

Keyed by the task's name and version, the embedder's identity and a hash of every text, so a
changed text is never served stale. Each split is one `.npy` file written chunk by chunk into a
temporary file and renamed into place; a small JSON record written after both (their shapes and
CRC-32s) vouches for them. Files without a matching record (a killed write, a full disk, a
changed byte) are a miss: embedded again and replaced. A million 384-d vectors are 1.5 GB on disk
and never all in memory at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np

from mixbench.embedder import Embedder
from mixbench.storage.atomic import write_text
from mixbench.storage.cache import cache_root
from mixbench.task import TaskInfo

log = logging.getLogger(__name__)

EMBED_CHUNK = 16_384   # texts per call of the embedder: its working memory is bounded by this many
SPLITS = ("train", "eval")


def embed_with_cache(info: TaskInfo, embedder: Embedder, train_texts: list[str], eval_texts: list[str],
                     progress: bool) -> tuple[np.ndarray, np.ndarray, bool, Path]:
    """(train embeddings, eval embeddings, whether they came from the cache, the entry's base path).

    The arrays are read-only memory maps of the cache files (in-memory arrays if the cache folder
    cannot be written). The embedder is fitted on the training texts only.
    """
    digest = hashlib.sha256()
    for text in (info.name, info.version, embedder.identity(), *train_texts, "\0eval\0", *eval_texts):
        digest.update(text.encode("utf-8", errors="surrogatepass") + b"\0")
    folder = cache_root() / "embeddings" / f"{info.name}-{info.version}"
    base = folder / f"{embedder.identity()}-{digest.hexdigest()[:20]}"
    stored = _load(base, {"train": len(train_texts), "eval": len(eval_texts)})
    if stored is not None:
        return stored["train"], stored["eval"], True, base
    embedder.fit(train_texts)
    arrays, record = {}, {}
    for split, texts in (("train", train_texts), ("eval", eval_texts)):
        arrays[split] = _embed_to_file(embedder, texts, _file(base, split), progress, split,
                                       dim=arrays["train"].shape[1] if arrays else None)
        record[split] = _describe(_file(base, split)) if isinstance(arrays[split], np.memmap) else None
    if all(record.values()):
        try:
            write_text(base.with_suffix(".json"), json.dumps(record))
        except OSError as exc:
            log.warning("%s (a cache entry: the next run embeds again)", exc)
    return arrays["train"], arrays["eval"], False, base


def _file(base: Path, split: str) -> Path:
    return base.parent / f"{base.name}.{split}.npy"


def _embed_to_file(embedder: Embedder, texts: list[str], path: Path, progress: bool, split: str,
                   dim: int | None) -> np.ndarray:
    """Embeds each distinct text once (templated captions repeat a lot), EMBED_CHUNK at a time in
    first-seen order, so a list without repeats is embedded exactly as it would be whole; each row
    lands in a memory map of `path` (renamed into place when complete)."""
    from tqdm.auto import tqdm

    distinct = list(dict.fromkeys(texts))
    position = None if len(distinct) == len(texts) else _positions(texts, distinct)
    order = None if position is None else np.argsort(position, kind="stable")   # rows by the distinct text they copy
    bounds = None if position is None else np.searchsorted(position[order], np.arange(0, len(distinct) + 1))
    out, tmp = None, None
    starts = range(0, len(distinct), EMBED_CHUNK)
    try:
        for start in tqdm(starts, desc=f"embedding {split}", disable=not progress or len(starts) < 2, leave=False):
            vectors = np.asarray(embedder.embed(distinct[start:start + EMBED_CHUNK], progress=progress))
            if out is None:
                out, tmp = _open(path, (len(texts), vectors.shape[1]))
            stop = start + len(vectors)
            if position is None:
                out[start:stop] = vectors
            else:
                rows = order[bounds[start]:bounds[stop]]
                out[rows] = vectors[position[rows] - start]
        if out is None:   # no texts at all
            out, tmp = _open(path, (0, dim or 0))
        return _close(out, tmp, path)
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def _positions(texts: list[str], distinct: list[str]) -> np.ndarray:
    """(n,) the index in `distinct` of each text."""
    index = {text: i for i, text in enumerate(distinct)}
    return np.fromiter((index[text] for text in texts), dtype=np.int64, count=len(texts))


def _open(path: Path, shape: tuple[int, int]):
    """(a writable float32 array of `shape`, the temporary file behind it or None): a memory map
    beside `path`, or, where the cache folder cannot be written, plain memory."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        return np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape), tmp
    except OSError as exc:
        log.warning("cannot write the embeddings cache at %s (%s); keeping them in memory", path.parent,
                    exc.strerror or exc)
        return np.empty(shape, dtype=np.float32), None


def _close(out: np.ndarray, tmp: str | None, path: Path) -> np.ndarray:
    if tmp is None:
        return out
    out.flush()
    del out
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


# -- reading an entry back, only when its record vouches for it ----------------------------------

def _describe(path: Path) -> dict:
    array = np.load(path, mmap_mode="r")
    return {"shape": list(array.shape), "crc32": _crc32(path)}


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            crc = zlib.crc32(block, crc)
    return crc


def _load(base: Path, rows: dict[str, int]) -> dict[str, np.ndarray] | None:
    record_path = base.with_suffix(".json")
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
        out = {}
        for split in SPLITS:
            path = _file(base, split)
            array = np.load(path, mmap_mode="r")
            if array.dtype != np.float32 or array.ndim != 2 or array.shape[0] != rows[split] \
                    or list(array.shape) != record[split]["shape"] or _crc32(path) != record[split]["crc32"]:
                raise ValueError("its files do not match their record")
            out[split] = array
        return out
    except Exception as exc:  # noqa: BLE001 - truncated headers raise ValueError, OSError, EOFError...
        log.warning("cache entry %s cannot be read (%s: %s); computing it again", base, type(exc).__name__, exc)
        return None
