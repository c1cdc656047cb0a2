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

from mixbench.embedder import Embedder, listening
from mixbench.regroup import stages
from mixbench.storage.atomic import write_text
from mixbench.storage.cache import cache_root
from mixbench.task import TaskInfo

log = logging.getLogger(__name__)

EMBED_CHUNK = 16_384   # texts per call of the embedder: its working memory is bounded by this many
SPLITS = ("train", "eval")


def embed_with_cache(info: TaskInfo, embedder: Embedder, train_texts: list[str], eval_texts: list[str],
                     progress: bool, seconds: dict | None = None) -> tuple[np.ndarray, np.ndarray, bool, Path]:
    """(train embeddings, eval embeddings, whether they came from the cache, the entry's base path).

    The arrays are read-only memory maps of the cache files (in-memory arrays if the cache folder
    cannot be written). The embedder is fitted on the training texts only. A miss is announced in
    one line before the texts are embedded (how many, about how long, where they are cached); the
    stage's seconds are added to `seconds["embedding"]` when given.
    """
    digest = hashlib.sha256()
    for text in (info.name, info.version, embedder.identity(), *train_texts, "\0eval\0", *eval_texts):
        digest.update(text.encode("utf-8", errors="surrogatepass") + b"\0")
    folder = cache_root() / "embeddings" / f"{info.name}-{info.version}"
    base = folder / f"{embedder.identity()}-{digest.hexdigest()[:20]}"
    stored = _load(base, {"train": len(train_texts), "eval": len(eval_texts)})
    if stored is not None:
        return stored["train"], stored["eval"], True, base
    with stages.timed(seconds if seconds is not None else {}, "embedding"):
        embedder.fit(train_texts)
        distinct = {"train": list(dict.fromkeys(train_texts)), "eval": list(dict.fromkeys(eval_texts))}
        total = sum(map(len, distinct.values()))
        log.info("%s", _announcement(info, embedder, len(train_texts) + len(eval_texts), total,
                                     _measured_rate(embedder, distinct["train"] or distinct["eval"]), folder))
        arrays, record = {}, {}
        with stages.bar(total, f"embedding {info.name} ({embedder.identity()})", "text", progress) as shown:
            for split, texts in (("train", train_texts), ("eval", eval_texts)):
                arrays[split] = _embed_to_file(embedder, texts, distinct[split], _file(base, split), shown,
                                               dim=arrays["train"].shape[1] if arrays else None)
                record[split] = _describe(_file(base, split)) if isinstance(arrays[split], np.memmap) else None
        if all(record.values()):
            try:
                write_text(base.with_suffix(".json"), json.dumps(record))
            except OSError as exc:
                log.warning("%s (a cache entry: the next run embeds again)", exc)
    return arrays["train"], arrays["eval"], False, base


# Texts embedded, untimed then timed, to measure this machine's rate before the stage is announced.
# Evenly spaced over the training texts, so long and short ones count as they come; 32 texts cost
# a fraction of a percent of a large task and a second or two even for minilm on a busy CPU.
PILOT = 32
PILOT_CALLS = 2   # embed() calls the measurement makes: one untimed (lazy loading), one timed


def _measured_rate(embedder: Embedder, texts: list[str]) -> tuple[float, int] | None:
    """(texts per second, texts timed) measured on a pilot sample of `texts`, after one untimed
    call that loads whatever the embedder loads lazily (a model, a session); None for no texts.
    The pilot's vectors are not kept: a text's vector must not depend on what it was embedded with."""
    if not texts:
        return None
    sample = texts[::max(1, len(texts) // PILOT)][:PILOT]
    embedder.embed(sample[:1], progress=False)
    timer = stages.Timer()
    embedder.embed(sample, progress=False)
    return len(sample) / max(timer.seconds, 1e-6), len(sample)


def _announcement(info: TaskInfo, embedder: Embedder, n_texts: int, n_distinct: int,
                  rate: tuple[float, int] | None, folder: Path) -> str:
    """The line said before the embedding: what, how much, about how long (and measured how), where kept."""
    repeats = f" ({n_distinct:,} distinct)" if n_distinct < n_texts else ""
    if rate is None:
        estimate = "nothing to embed"
    else:
        per_second, timed = rate
        estimate = (f"{stages.about(n_distinct / per_second)} at {per_second:,.1f} texts/s, measured on "
                    f"{timed} of them just now")
    return (f"embedding {n_texts:,} texts{repeats} of {info.name} with {embedder.identity()} (done once, then "
            f"read from the cache): {estimate}; cached in {folder}")


def _file(base: Path, split: str) -> Path:
    return base.parent / f"{base.name}.{split}.npy"


def _embed_to_file(embedder: Embedder, texts: list[str], distinct: list[str], path: Path, shown,
                   dim: int | None) -> np.ndarray:
    """Embeds each distinct text once (templated captions repeat a lot), EMBED_CHUNK at a time in
    first-seen order, so a list without repeats is embedded exactly as it would be whole; each row
    lands in a memory map of `path` (renamed into place when complete). `shown` is the stage's bar:
    it moves by texts as each call ends, and within a call as far as the embedder reports
    (mixbench.embedder.report_progress); the embedder draws none of its own."""
    position = None if len(distinct) == len(texts) else _positions(texts, distinct)
    order = None if position is None else np.argsort(position, kind="stable")   # rows by the distinct text they copy
    bounds = None if position is None else np.searchsorted(position[order], np.arange(0, len(distinct) + 1))
    out, tmp = None, None
    try:
        for start in range(0, len(distinct), EMBED_CHUNK):
            before = shown.n
            chunk = distinct[start:start + EMBED_CHUNK]
            with listening(_mover(shown, len(chunk))):
                vectors = np.asarray(embedder.embed(chunk, progress=False))
            shown.update(len(chunk) - (shown.n - before))
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


def _mover(shown, size: int):
    """Moves `shown` within one embed() call of `size` texts to the share the embedder reports done."""
    before = shown.n

    def move(done: float) -> None:
        shown.update(max(0, before + int(done * size) - shown.n))

    return move


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
