"""k-means over a range of k, scored by silhouette (and inertia, for the elbow).

Train is clustered first; evaluation examples are then assigned to the nearest *training*
centroid — never clustered on their own, so every eval cluster has training data.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

# Above this many points MiniBatchKMeans replaces KMeans: full Lloyd passes over 20k × 384 points
# for 60 values of k take minutes, mini-batches take seconds at a small loss of inertia.
MINIBATCH_ABOVE = 10_000
SILHOUETTE_SAMPLE = 5_000  # silhouette is O(n²): score a seeded subsample past this size


@dataclass(frozen=True)
class KFit:
    k: int
    silhouette: float
    inertia: float
    labels: np.ndarray      # (n,) cluster of each training point
    centroids: np.ndarray   # (k, d)


def parse_k(spec: str) -> list[int]:
    """'30' -> [30]; '2:64' -> 2..64; '2:64:4' -> 2, 6, ..., 62. Raises ValueError on bad input."""
    parts = spec.split(":")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--k must be an integer or START:STOP[:STEP], got {spec!r}") from None
    if len(numbers) == 1:
        ks = numbers
    elif len(numbers) in (2, 3):
        start, stop, step = numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else 1
        if step <= 0 or stop < start:
            raise ValueError(f"--k range {spec!r} is empty")
        ks = list(range(start, stop + 1, step))
    else:
        raise ValueError(f"--k must be an integer or START:STOP[:STEP], got {spec!r}")
    if min(ks) < 2:
        raise ValueError(f"k must be at least 2, got {min(ks)}")
    return ks


def fit_k(x: np.ndarray, k: int, seed: int) -> KFit:
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.metrics import silhouette_score

    if x.shape[0] > MINIBATCH_ABOVE:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=2048)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=3)
    with warnings.catch_warnings():
        # Duplicate points can leave fewer distinct points than k; k-means still returns k
        # centroids and the silhouette below reflects the degenerate clustering.
        warnings.simplefilter("ignore", category=UserWarning)
        labels = model.fit_predict(x)
    distinct = np.unique(labels).size
    if distinct < 2:
        silhouette = -1.0
    else:
        sample = min(SILHOUETTE_SAMPLE, x.shape[0])
        silhouette = float(silhouette_score(x, labels, sample_size=sample if sample < x.shape[0] else None,
                                            random_state=seed))
    return KFit(k=k, silhouette=silhouette, inertia=float(model.inertia_), labels=labels.astype(np.int64),
                centroids=model.cluster_centers_.astype(np.float32))


def sweep(x: np.ndarray, ks: list[int], seed: int, progress: bool = False) -> list[KFit]:
    from tqdm.auto import tqdm

    return [fit_k(x, k, seed) for k in tqdm(ks, desc="k-means sweep", disable=not progress, leave=False)]


def best_by_silhouette(fits: list[KFit]) -> KFit:
    return max(fits, key=lambda f: (f.silhouette, -f.k))


def assign_nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (Euclidean) for each row of x."""
    # ||x - c||² = ||x||² - 2 x·c + ||c||²; the ||x||² term does not change the argmin.
    scores = x @ centroids.T * -2.0 + (centroids ** 2).sum(1)[None, :]
    return scores.argmin(1).astype(np.int64)
