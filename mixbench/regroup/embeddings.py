"""Embeddings of a task's texts, cached on disk by task version, embedder and the texts themselves."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mixbench.embedder import Embedder
from mixbench.storage.cache import cache_root, load_npz, save_npz
from mixbench.task import TaskInfo


def embed_with_cache(info: TaskInfo, embedder: Embedder, train_texts: list[str], eval_texts: list[str],
                     progress: bool) -> tuple[np.ndarray, np.ndarray, bool, Path]:
    """(train embeddings, eval embeddings, whether they came from the cache, the cache file).

    Keyed by the task's name and version, the embedder's identity and a hash of every text, so a
    changed text is never served stale. The embedder is fitted on the training texts only.
    """
    digest = hashlib.sha256()
    for text in (info.name, info.version, embedder.identity(), *train_texts, "\0eval\0", *eval_texts):
        digest.update(text.encode("utf-8", errors="surrogatepass") + b"\0")
    folder = cache_root() / "embeddings" / f"{info.name}-{info.version}"
    path = folder / f"{embedder.identity()}-{digest.hexdigest()[:20]}.npz"
    stored = load_npz(path)
    if stored is not None and {"train", "eval"} <= set(stored):
        return stored["train"], stored["eval"], True, path
    embedder.fit(train_texts)
    train_x = _embed_distinct(embedder, train_texts, progress)
    eval_x = _embed_distinct(embedder, eval_texts, progress)
    save_npz(path, train=train_x, eval=eval_x)
    return train_x, eval_x, False, path


def _embed_distinct(embedder: Embedder, texts: list[str], progress: bool) -> np.ndarray:
    """Embeds each distinct text once (templated captions repeat a lot), in first-seen order, so
    a list without repeats is embedded exactly as it would be whole."""
    distinct = list(dict.fromkeys(texts))
    if len(distinct) == len(texts):
        return embedder.embed(texts, progress=progress)
    position = {text: i for i, text in enumerate(distinct)}
    return embedder.embed(distinct, progress=progress)[[position[t] for t in texts]]
