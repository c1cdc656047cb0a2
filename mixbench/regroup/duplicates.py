"""Near-duplicate texts collapsed before clustering: each group of embeddings at or above a cosine
similarity counts once.

Templated prompts and one problem answered by many sources make tight knots of near-identical
points; k-means and the k rules then spend clusters on the knots (silhouette rises with k). The
collapse follows SemDeDup (Abbas, Tirumala, Simig, Ganguli & Morcos 2023, "SemDeDup: Data-efficient
learning at web-scale through semantic deduplication", arXiv 2303.09540): k-means first splits the
points into groups of about GROUP, then, within each group, a point whose cosine similarity to an
earlier point reaches the threshold joins that point's representative. Here the earlier point is
the earlier one in the data's order (SemDeDup orders by distance to the centroid), so the first
text of a near-duplicate group represents it. Pairs split across groups are missed, as there.
"""

from __future__ import annotations

import math

import numpy as np

from mixbench.regroup.clustering import assign_nearest, fit_centroids

GROUP = 2_048    # points per k-means group, about: bounds the pairwise products
BLOCK = 1_024    # rows of a group compared at once


def representatives(x: np.ndarray, cosine: float, seed: int, progress: bool = False) -> np.ndarray:
    """(n,) for each row of x, the index of the row that represents it (itself for a representative)."""
    from tqdm.auto import tqdm

    n = x.shape[0]
    representative = np.arange(n, dtype=np.int64)
    for members in tqdm(_groups(x, seed), desc="collapsing near-duplicates", disable=not progress, leave=False):
        vectors = np.asarray(x[members], dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        for start in range(0, members.size, BLOCK):
            stop = min(start + BLOCK, members.size)
            similarity = vectors[start:stop] @ vectors[:stop].T            # (block, stop): to every point up to here
            similarity[np.arange(stop - start)[:, None] <= np.arange(stop)[None, :] - start] = -np.inf  # earlier only
            nearest = similarity.argmax(1)
            for row in np.flatnonzero(similarity[np.arange(stop - start), nearest] >= cosine):
                # The earlier point was resolved before this one (rows go in order): one hop suffices.
                representative[members[start + row]] = representative[members[nearest[row]]]
    return representative


def _groups(x: np.ndarray, seed: int) -> list[np.ndarray]:
    """Row indices split by k-means into about n / GROUP groups, each ascending (one group if small)."""
    n = x.shape[0]
    if n <= 2 * GROUP:
        return [np.arange(n)]
    labels = assign_nearest(x, fit_centroids(x, math.ceil(n / GROUP), seed))
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    return [group for group in np.split(order, bounds) if group.size]
