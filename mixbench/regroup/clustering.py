"""k-means over a range of k, measured by every k rule, at any size.

Train is clustered first; evaluation examples are then assigned to the nearest *training*
centroid — never clustered on their own, so every eval cluster has training data.

Sized for a million points within a few GB: the points may be a memory-mapped file; k-means
above MINIBATCH_ABOVE points is scikit-learn's MiniBatchKMeans, which reads mini-batches of them;
every pass over all points (cluster sizes, inertia, assignment) goes in chunks of CHUNK rows; and
k-means is fitted on at most FIT_SAMPLE of them; the rules measure a declared, seeded sample of
SCORE_SAMPLE points (silhouette is O(s²)).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mixbench.k_rule import Clustered, KRule

log = logging.getLogger(__name__)

# Above this many points MiniBatchKMeans replaces KMeans: full Lloyd passes over 20k × 384 points
# for 60 values of k take minutes, mini-batches take seconds at a small loss of inertia.
MINIBATCH_ABOVE = 10_000
SCORE_SAMPLE = 5_000   # the rules measure this many points (all of them when there are fewer)
# k-means is fitted on at most this many points (a seeded sample; every point is still assigned).
# MiniBatchKMeans' early stopping smooths its inertia over a window that widens with n, so its steps
# grow with n: at 1M points 1,101 steps and 14 s per fit at k = 16, at 200k a few hundred.
FIT_SAMPLE = 200_000
CHUNK = 32_768         # rows per chunk of a pass over all points: 48 MiB of 384-d float32


@dataclass(frozen=True)
class KFit:
    k: int
    row: dict               # {"k", "inertia", "smallest", every rule's measures}
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


def fit_centroids(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(k, d) k-means centroids of the rows of x (an array or a memory map), on one thread: k-means'
    steps are small and many, and threads meeting at each one lose more than they gain (2 cores
    under load 8: KMeans on 8k × 384 at k = 32 in 0.75 s alone, 10.3 s on two threads;
    MiniBatchKMeans on 50k in 0.75 s against 3.2 s)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    if x.shape[0] > MINIBATCH_ABOVE:
        # compute_labels=False: the labels of every point come from one chunked pass per k below.
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=2048, compute_labels=False)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=3)
    with warnings.catch_warnings(), threadpool_limits(1):
        # Duplicate points can leave fewer distinct points than k; k-means still returns k
        # centroids and the measures below reflect the degenerate clustering.
        warnings.simplefilter("ignore", category=UserWarning)
        model.fit(x)
    return model.cluster_centers_.astype(np.float32)


def assign_nearest(x: np.ndarray, centroids: np.ndarray, progress: bool = False, desc: str = "assigning") \
        -> np.ndarray:
    """Index of the nearest centroid (Euclidean) for each row of x, in chunks."""
    labels = np.empty(x.shape[0], dtype=np.int64)
    for start, _, nearest in _chunked_nearest(x, centroids, progress, desc):
        labels[start:start + nearest.size] = nearest
    return labels


def sizes_and_inertia(x: np.ndarray, centroids: np.ndarray, weights: np.ndarray | None = None) \
        -> tuple[np.ndarray, float]:
    """(points per centroid, sum of squared distances to the nearest centroid), in one chunked
    pass; each row counted `weights[i]` times when given (a collapsed near-duplicate group)."""
    sizes = np.zeros(centroids.shape[0], dtype=np.float64)
    inertia = 0.0
    for start, squared, nearest in _chunked_nearest(x, centroids):
        w = None if weights is None else weights[start:start + nearest.size]
        sizes += np.bincount(nearest, weights=w, minlength=centroids.shape[0])
        inertia += float(squared.sum() if w is None else (squared * w).sum())
    return sizes, inertia


def _chunked_nearest(x, centroids, progress=False, desc=""):
    """(start, squared distance to the nearest centroid, its index) for each chunk of rows of x."""
    from tqdm.auto import tqdm

    from mixbench.regroup.stages import bars_allowed

    c = np.asarray(centroids, dtype=np.float32)
    c_norms = (c ** 2).sum(1)
    for start in tqdm(range(0, x.shape[0], CHUNK), desc=desc, disable=not bars_allowed(progress), leave=False):
        chunk = np.asarray(x[start:start + CHUNK], dtype=np.float32)
        # ||x - c||² = ||x||² - 2 x·c + ||c||²: one matrix product per chunk.
        scores = chunk @ c.T * -2.0 + c_norms[None, :]
        nearest = scores.argmin(1)
        squared = np.maximum(scores[np.arange(nearest.size), nearest] + (chunk ** 2).sum(1), 0.0)
        yield start, squared, nearest.astype(np.int64)


def scoring_sample(n: int, seed: int, size: int = SCORE_SAMPLE) -> np.ndarray:
    """The rows the rules measure: all n in a seeded random order, or a seeded random `size` of them."""
    rng = np.random.default_rng(seed)
    return rng.permutation(n) if n <= size else rng.choice(n, size=size, replace=False)


def sweep(x: np.ndarray, ks: list[int], seed: int, rules: dict[str, KRule], *, fit_rows: np.ndarray | None = None,
          weights: np.ndarray | None = None, progress: bool = False,
          after_ends: Callable[[dict[int, float]], None] | None = None, desc: str = "k-means sweep") -> list[KFit]:
    """k-means for each k (on the rows `fit_rows` of x, or all), then, per k: the size of each
    cluster and the inertia over all rows (each weighted), and every rule's measures on the
    scoring sample. A rule whose measure raises is left out of the record, with a warning.

    The smallest and the largest k are done first, and `after_ends({k: seconds})` is called with
    their times: the two ends of the range are what an estimate of the rest is made from (each k
    fits independently with the same seed, so the order changes no result). `desc` labels the bar."""
    from threadpoolctl import threadpool_limits

    from mixbench.regroup import stages

    sample = np.asarray(x[scoring_sample(x.shape[0], seed)], dtype=np.float32)   # in a random order
    fit_on = x if fit_rows is None else np.asarray(x[np.sort(fit_rows)])
    measures = _distinct_measures(rules)
    ends = list(dict.fromkeys([ks[0], ks[-1]]))
    fits, took = {}, {}
    shown = stages.bar(len(ks), desc, "k", progress)
    for k in [*ends, *(k for k in ks if k not in ends)]:
        timer = stages.Timer()
        centroids = fit_centroids(fit_on, k, seed)
        sizes, inertia = sizes_and_inertia(x, centroids, weights)
        used = sizes[sizes > 0]
        row = {"k": k, "inertia": inertia, "smallest": float(used.min()), "clusters": int(used.size)}
        view = Clustered(k=k, points=sample, labels=assign_nearest(sample, centroids), centroids=centroids, seed=seed)
        with threadpool_limits(1):   # the measures are small too (silhouette on 5k points: 0.45 s alone, 1.1 s on two)
            for name, measure in measures.items():
                row.update(_measured(name, measure, view))
        fits[k] = KFit(k=k, row=row, centroids=centroids)
        took[k] = timer.seconds
        if after_ends is not None and len(took) == len(ends) and len(ks) > len(ends):
            after_ends(dict(took))
        shown.update(1)
    shown.close()
    return [fits[k] for k in ks]


def sweep_estimate(ks: list[int], took: dict[int, float]) -> float:
    """Seconds the k values not yet done will take, from the times of the two ends of the range:
    a straight line in k between them (k-means' steps grow with k; the rules' measures on the
    scoring sample, and the fixed costs, hardly do)."""
    low, high = min(took), max(took)
    slope = (took[high] - took[low]) / (high - low) if high > low else 0.0
    return sum(max(0.0, took[low] + slope * (k - low)) for k in ks if k not in took)


def _distinct_measures(rules: dict[str, KRule]) -> dict[str, Callable[[Clustered], dict]]:
    """One measure per distinct measuring method: a rule that inherits its measure (first-peak
    reads silhouette's) costs nothing more."""
    seen, out = set(), {}
    for name, rule in rules.items():
        method = type(rule).measure
        if method not in seen:
            seen.add(method)
            out[name] = rule.measure
    return out


def _measured(name: str, measure, view: Clustered) -> dict:
    try:
        values = measure(view)
        return {key: (None if value is None else float(value)) for key, value in values.items()}
    except Exception as exc:  # noqa: BLE001 - plugin code: one broken rule must not stop the sweep
        log.warning("k rule %r could not measure k=%d (%s: %s); its values are left out", name, view.k,
                    type(exc).__name__, exc)
        return {}
