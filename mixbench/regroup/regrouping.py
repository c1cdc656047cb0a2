"""Regroup (R&B, paper Alg. 2): re-partition a task's data into semantic domains.

Embed every training example, run k-means for each k in a range, keep the k with the best
silhouette (unless k is fixed), then assign every evaluation example to the nearest training
centroid. The result relabels the task's examples with cluster domains "c00", "c01", ...
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mixbench.embedder import Embedder
from mixbench.errors import MixbenchError
from mixbench.regroup import clustering
from mixbench.regroup.embeddings import embed_with_cache
from mixbench.storage.cache import load_npz, save_npz
from mixbench.task import Example, TaskData, TaskInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Regrouping:
    embedder: str               # embedder identity
    k: int
    silhouette: float
    sweep: list[dict]           # [{"k", "silhouette", "inertia"}] for every k tried
    train_labels: np.ndarray    # (n_train,) cluster per training example
    eval_labels: np.ndarray     # (n_eval,) nearest training centroid per eval example
    cached_embeddings: bool     # True when the embeddings came from the cache

    @property
    def domains(self) -> list[str]:
        return [cluster_name(j) for j in range(self.k)]

    def describe(self) -> dict:
        """What goes into results JSON and MLflow: how the domains were made."""
        return {"method": "regroup", "embedder": self.embedder, "k": self.k, "silhouette": self.silhouette}


def cluster_name(j: int) -> str:
    return f"c{j:02d}"


def example_text(e: Example) -> str:
    """The text a domain is judged by: the whole example, prompt then response."""
    return f"{e.prompt}\n\n{e.response}"


def regroup(data: TaskData, info: TaskInfo, embedder: Embedder, ks: list[int], *, seed: int = 0,
            sample: int | None = None, progress: bool = False) -> Regrouping:
    """Cluster the training examples for every k in `ks`; assign eval examples to the nearest centroid.

    `sample` fits k-means and silhouette on a seeded sample of that many training examples
    (faster on big tasks); every training example is then assigned to the nearest centroid too.
    """
    train_texts = [example_text(e) for e in data.train]
    eval_texts = [example_text(e) for e in data.eval]
    _check_inputs(train_texts, eval_texts, ks, sample)
    ks = _ks_within_distinct(ks, len(set(train_texts)))
    train_x, eval_x, cached, key = embed_with_cache(info, embedder, train_texts, eval_texts, progress)
    grouping_path = key.parent / f"{key.stem}-groups-{_digest(ks, seed, sample)}.npz"
    stored = _load_grouping(grouping_path, embedder.identity(), cached)
    if stored is not None:
        return stored
    grouping = _cluster(train_x, eval_x, ks, seed, sample, progress, embedder.identity(), cached)
    _save_grouping(grouping_path, grouping)
    return grouping


def _cluster(train_x, eval_x, ks, seed, sample, progress, identity, cached) -> Regrouping:
    fit_rows = np.arange(len(train_x))
    if sample is not None and sample < len(train_x):
        fit_rows = np.sort(np.random.default_rng(seed).choice(len(train_x), size=sample, replace=False))
    fits = clustering.sweep(train_x[fit_rows], ks, seed, progress)
    best = fits[0] if len(fits) == 1 else clustering.best_by_silhouette(fits)

    train_labels = clustering.assign_nearest(train_x, best.centroids)
    train_labels[fit_rows] = best.labels
    # k-means can leave a centroid with no training point (duplicates, mini-batches): drop it
    # and renumber, so every cluster — and every eval assignment — has training data.
    used = np.unique(train_labels)
    renumber = np.full(best.k, -1, dtype=np.int64)
    renumber[used] = np.arange(used.size)
    train_labels = renumber[train_labels]
    eval_labels = clustering.assign_nearest(eval_x, best.centroids[used])
    return Regrouping(
        embedder=identity, k=int(used.size), silhouette=best.silhouette,
        sweep=[{"k": f.k, "silhouette": f.silhouette, "inertia": f.inertia} for f in fits],
        train_labels=train_labels, eval_labels=eval_labels, cached_embeddings=cached,
    )


def apply(data: TaskData, grouping: Regrouping) -> TaskData:
    """The same examples, each relabelled with its cluster as its domain."""
    if len(grouping.train_labels) != len(data.train) or len(grouping.eval_labels) != len(data.eval):
        raise MixbenchError("the regrouping does not match the task's data (was the task changed?)")
    return TaskData(
        train=[replace(e, domain=cluster_name(int(j))) for e, j in zip(data.train, grouping.train_labels)],
        eval=[replace(e, domain=cluster_name(int(j))) for e, j in zip(data.eval, grouping.eval_labels)],
    )


def _check_inputs(train_texts, eval_texts, ks, sample) -> None:
    for split, texts in (("training", train_texts), ("evaluation", eval_texts)):
        blank = next((i for i, t in enumerate(texts) if not t.strip()), None)
        if blank is not None:
            raise MixbenchError(f"{split} example {blank} has empty text; remove it before regrouping")
    n = len(train_texts) if sample is None else min(sample, len(train_texts))
    if sample is not None and sample < 2:
        raise MixbenchError(f"--sample must be at least 2, got {sample}")
    if max(ks) >= n:
        raise MixbenchError(f"k={max(ks)} needs more than {n} training examples to cluster; use a smaller --k")


def _ks_within_distinct(ks: list[int], distinct: int) -> list[int]:
    """k above the number of distinct texts only splits identical points (templated captions):
    such k are left out of the sweep, with a note."""
    kept = [k for k in ks if k <= distinct]
    if not kept:
        raise MixbenchError(f"the training set has only {distinct} distinct texts, fewer than every k asked for "
                            f"({min(ks)}..{max(ks)}); use --domains regroup:K with K <= {distinct}")
    if len(kept) < len(ks):
        log.info("only %d distinct training texts: k above %d left out of the sweep", distinct, distinct)
    return kept


# -- the clustering cache: one file per (embeddings, k range, seed, sample) ------------------------

def _digest(*parts) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def _load_grouping(path: Path, identity: str, cached: bool) -> Regrouping | None:
    stored = load_npz(path)
    if stored is None:
        return None
    try:
        sweep = [{"k": int(k), "silhouette": float(s), "inertia": float(i)} for k, s, i in stored["sweep"]]
        return Regrouping(embedder=identity, k=int(stored["k"]), silhouette=float(stored["silhouette"]),
                          sweep=sweep, train_labels=stored["train_labels"], eval_labels=stored["eval_labels"],
                          cached_embeddings=cached)
    except (KeyError, ValueError, TypeError):
        return None


def _save_grouping(path: Path, g: Regrouping) -> None:
    sweep = np.array([[r["k"], r["silhouette"], r["inertia"]] for r in g.sweep], dtype=np.float64)
    save_npz(path, k=g.k, silhouette=g.silhouette, sweep=sweep, train_labels=g.train_labels,
             eval_labels=g.eval_labels)
