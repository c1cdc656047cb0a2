"""Regroup at scale, checked small: embeddings in a memory-mapped file, passes over all points in
chunks, MiniBatchKMeans past its threshold, the rules on a declared sample. Each gives what the
whole-array path gives (the chunk sizes are shrunk so a few hundred points cross every boundary);
the time and memory at a million points are measured by benchmarks/regroup_scale.py."""

from __future__ import annotations

import numpy as np
import pytest

from mixbench.regroup import KChoice, clustering, regroup_vectors
from mixbench.regroup.duplicates import representatives


def _blobs(n=900, dim=16, k=5, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 3
    return (centres[rng.integers(0, k, n)] + 0.4 * rng.normal(size=(n, dim))).astype(np.float32)


def _memmap(path, x):
    np.save(path, x)
    return np.load(path, mmap_mode="r")


def test_a_memory_map_in_small_chunks_gives_the_in_memory_result(tmp_path, monkeypatch):
    x = _blobs()
    whole = regroup_vectors(x, x[:50], [2, 3, 4, 5, 6], seed=0)
    monkeypatch.setattr(clustering, "CHUNK", 64)
    mapped = regroup_vectors(_memmap(tmp_path / "train.npy", x), _memmap(tmp_path / "eval.npy", x[:50]),
                             [2, 3, 4, 5, 6], seed=0)
    assert mapped.k == whole.k == 5
    np.testing.assert_array_equal(mapped.train_labels, whole.train_labels)
    np.testing.assert_array_equal(mapped.eval_labels, whole.eval_labels)
    for a, b in zip(mapped.sweep, whole.sweep):
        assert a["inertia"] == pytest.approx(b["inertia"], rel=1e-5) and a["smallest"] == b["smallest"]


def test_chunked_sizes_and_inertia_are_the_direct_ones(monkeypatch):
    x = _blobs(n=500)
    centroids = x[:7]
    monkeypatch.setattr(clustering, "CHUNK", 33)
    weights = np.random.default_rng(2).integers(1, 4, size=len(x)).astype(float)
    sizes, inertia = clustering.sizes_and_inertia(x, centroids, weights)
    distances = ((x[:, None, :] - centroids[None]) ** 2).sum(-1)
    nearest = distances.argmin(1)
    np.testing.assert_array_equal(clustering.assign_nearest(x, centroids), nearest)
    np.testing.assert_allclose(sizes, np.bincount(nearest, weights=weights, minlength=7))
    assert inertia == pytest.approx(float((distances.min(1) * weights).sum()), rel=1e-5)


def test_past_the_threshold_minibatch_k_means_and_a_scoring_sample_are_used(monkeypatch):
    """With the thresholds shrunk, 900 points are 'large': MiniBatchKMeans fits them, the rules
    measure SCORE_SAMPLE of them, and the blobs are still found."""
    from sklearn.metrics import adjusted_rand_score

    monkeypatch.setattr(clustering, "MINIBATCH_ABOVE", 100)
    monkeypatch.setattr(clustering, "SCORE_SAMPLE", 300)
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 900)
    x = (rng.normal(size=(5, 16)) * 3)[truth].astype(np.float32) + 0.4 * rng.normal(size=(900, 16)).astype(np.float32)
    result = regroup_vectors(x, x[:10], [3, 4, 5, 6, 7], seed=0)
    assert result.scored_on == 300 and result.clustered == 900
    assert result.k == 5 and adjusted_rand_score(truth, result.train_labels) > 0.99


def test_collapse_works_group_by_group(monkeypatch):
    """Past 2·GROUP points k-means splits them into groups first; duplicates inside a group are
    found as in one pass over all."""
    from mixbench.regroup import duplicates

    x = _blobs(n=600)
    x[300:400] = x[0]   # a hundred exact copies of the first point
    monkeypatch.setattr(duplicates, "GROUP", 100)
    monkeypatch.setattr(duplicates, "BLOCK", 16)
    rep = representatives(x, 0.9999, seed=0)
    assert (rep[300:400] == 0).all() and rep[0] == 0
    assert (rep[rep != np.arange(len(x))] < np.flatnonzero(rep != np.arange(len(x)))).all()   # earlier only
    assert regroup_vectors(x, x[:5], [3, 4, 5], seed=0, choice=KChoice(collapse=0.9999)).clustered \
        == np.unique(rep).size
