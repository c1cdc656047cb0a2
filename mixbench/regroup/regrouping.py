"""Regroup (R&B, paper Alg. 2): re-partition a task's data into semantic domains.

Embed every training example, run k-means for each k in a range, let a k rule pick k (the
paper's silhouette unless told otherwise; mixbench.k_rule), then assign every evaluation example
to the nearest training centroid. The result relabels the task's examples with cluster domains
"c00", "c01", ...

Two cache entries beside the embeddings: the sweep (every rule's measures and the centroids for
every k: all a rule needs to choose, so another rule or minimum cluster size reuses it) and the
assignment a choice made (keyed by the rule and the minimum size too).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mixbench.embedder import Embedder
from mixbench.errors import MixbenchError
from mixbench.k_rule import KRule
from mixbench.regroup import clustering, stages
from mixbench.regroup.duplicates import representatives
from mixbench.regroup.embeddings import embed_with_cache
from mixbench.regroup.spec import KChoice
from mixbench.storage.cache import load_npz, save_npz
from mixbench.task import Example, TaskData, TaskInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Regrouping:
    embedder: str               # embedder identity
    k: int
    silhouette: float | None    # the silhouette at the chosen k (whatever rule chose it)
    sweep: list[dict]           # per k tried: {"k", "inertia", "smallest", "clusters", every rule's measures}
    train_labels: np.ndarray    # (n_train,) cluster per training example
    eval_labels: np.ndarray     # (n_eval,) nearest training centroid per eval example
    cached_embeddings: bool     # True when the embeddings came from the cache
    choice: KChoice = KChoice()  # the rule that chose k, the smallest cluster allowed, the collapse
    scored_on: int = 0          # points the rules measured (the scoring sample)
    clustered: int = 0          # points k-means saw (fewer than the training examples when collapsed)
    # Seconds per stage this call spent: "embedding", "k_sweep", "assignment" (a stage served
    # from the cache is absent).
    seconds: dict = field(default_factory=dict, compare=False)

    @property
    def domains(self) -> list[str]:
        return [cluster_name(j) for j in range(self.k)]

    @property
    def rule(self) -> str:
        return self.choice.rule

    def describe(self) -> dict:
        """What goes into results JSON and MLflow: how the domains were made."""
        return {"method": "regroup", "embedder": self.embedder, "k": self.k, "silhouette": self.silhouette,
                "k_rule": self.choice.rule, "min_cluster_size": self.choice.min_cluster_size,
                "collapse": self.choice.collapse, "scored_on": self.scored_on, "clustered": self.clustered}


@dataclass(frozen=True)
class Clustering:
    """Regroup of vectors: the clusters, before any text or cache."""

    k: int
    sweep: list[dict]
    train_labels: np.ndarray
    eval_labels: np.ndarray
    scored_on: int
    clustered: int


def cluster_name(j: int) -> str:
    return f"c{j:02d}"


def example_text(e: Example) -> str:
    """The text a domain is judged by: the whole example, prompt then response."""
    return f"{e.prompt}\n\n{e.response}"


def regroup(data: TaskData, info: TaskInfo, embedder: Embedder, ks: list[int], *, seed: int = 0,
            sample: int | None = None, choice: KChoice | None = None, progress: bool = False) -> Regrouping:
    """Cluster the training examples for every k in `ks`, let `choice`'s k rule pick k, and assign
    eval examples to the nearest centroid.

    `sample` fits k-means on a seeded sample of that many training examples (faster on big tasks;
    past clustering.FIT_SAMPLE examples it is that many); every training example is then assigned to
    the nearest centroid too.
    """
    choice = choice or KChoice()
    choice.check()
    train_texts = [example_text(e) for e in data.train]
    eval_texts = [example_text(e) for e in data.eval]
    _check_inputs(train_texts, eval_texts, ks, sample)
    ks = _ks_within_distinct(ks, len(set(train_texts)))
    seconds: dict[str, float] = {}
    train_x, eval_x, cached, base = embed_with_cache(info, embedder, train_texts, eval_texts, progress,
                                                     seconds=seconds)
    result = regroup_vectors(train_x, eval_x, ks, seed=seed, sample=sample, choice=choice, progress=progress,
                             cache=base, seconds=seconds, label=info.name)
    silhouette = next((row.get("silhouette") for row in result.sweep if row["k"] == _chosen_k(result)), None)
    return Regrouping(embedder=embedder.identity(), k=result.k, silhouette=silhouette, sweep=result.sweep,
                      train_labels=result.train_labels, eval_labels=result.eval_labels, cached_embeddings=cached,
                      choice=choice, scored_on=result.scored_on, clustered=result.clustered, seconds=seconds)


def regroup_vectors(train_x: np.ndarray, eval_x: np.ndarray, ks: list[int], *, seed: int = 0,
                    sample: int | None = None, choice: KChoice | None = None, progress: bool = False,
                    cache: Path | None = None, measured: tuple[str, ...] | None = None,
                    seconds: dict | None = None, label: str = "") -> Clustering:
    """Regroup's clustering of embeddings (arrays or memory maps, any size): the sweep over `ks`
    (cached at `cache`-sweep-*.npz when given), the k `choice` picks, and the labels of every
    training and eval row (cached at `cache`-groups-*.npz). Every registered rule's measures are
    recorded, or only those of the rules in `measured` (the chosen rule's always). The seconds of
    the sweep and of the assignment are added to `seconds` ("k_sweep", "assignment") when given;
    `label` (a task's name) names what is clustered in the sweep's announcement."""
    seconds = seconds if seconds is not None else {}
    choice = choice or KChoice()
    rules = {name: rule for name, rule in _rules().items()
             if measured is None or name in measured or name == choice.rule}
    sweep_key = _digest(ks, seed, sample, choice.collapse, clustering.SCORE_SAMPLE, clustering.FIT_SAMPLE,
                        sorted((name, repr(rule.get_params())) for name, rule in rules.items()))
    choice_key = _digest(sweep_key, choice.rule, choice.min_cluster_size)
    groups_path = None if cache is None else _beside(cache, f"groups-{choice_key}")
    stored = _load_groups(groups_path, len(train_x), len(eval_x))
    if stored is not None:
        return stored
    sweep_path = None if cache is None else _beside(cache, f"sweep-{sweep_key}")
    fits, representative = _load_sweep(sweep_path, ks)
    if fits is None:
        with stages.timed(seconds, "k_sweep"):
            fits, representative = _sweep(train_x, ks, seed, sample, choice.collapse, rules, progress,
                                          where=sweep_path, label=label)
        _save_sweep(sweep_path, fits, representative)
    best = _choose(fits, rules[choice.rule], choice)
    with stages.timed(seconds, "assignment"):
        result = _labels(train_x, eval_x, best, representative, fits, progress)
    _save_groups(groups_path, result)
    return result


def _rules() -> dict[str, KRule]:
    """Every registered rule, so the sweep records each one's measures whichever one chooses."""
    from mixbench import registry

    return {name: registry.k_rules.create(name) for name in registry.k_rules.names()}


def _sweep(train_x, ks, seed, sample, collapse, rules, progress, where: Path | None = None, label: str = ""):
    """(the fits for every k, the representative of each training row or None). Announced in one
    line: before the first fit when there is one k, else once the first k is done and timed."""
    representative, weights, points = None, None, train_x
    if collapse is not None:
        representative = representatives(train_x, collapse, seed, progress)
        kept = np.unique(representative)
        weights = np.bincount(np.searchsorted(kept, representative), minlength=kept.size).astype(np.float64)
        points = np.asarray(train_x[kept])
        log.info("near-duplicates collapsed: %d of %d training texts represent them all", kept.size, len(train_x))
        if kept.size <= max(ks):
            raise MixbenchError(f"after collapsing near-duplicates (cosine >= {collapse:g}) only {kept.size} "
                                f"distinct training texts are left, too few for k={max(ks)}; use a smaller --k or a "
                                f"higher --collapse-duplicates")
    fit_size = min(sample or len(points), clustering.FIT_SAMPLE)
    fit_rows = None
    if fit_size < len(points):
        fit_rows = np.random.default_rng(seed).choice(len(points), size=fit_size, replace=False)
    what = (f"k-means of {len(points):,} training texts{f' of {label}' if label else ''}"
            + (f" (fitted on {fit_size:,} of them)" if fit_size < len(points) else ""))
    cached = f"; cached in {where}" if where is not None else ""
    scored = f"every k rule measured on {min(len(points), clustering.SCORE_SAMPLE):,} of them"

    def announce(took: dict[int, float]) -> None:
        done = ", ".join(f"k = {k} took {stages.took(t)}" for k, t in took.items())
        log.info("%s over k = %d..%d (%d values; %s): %s more (%s just now; the k between estimated on the line "
                 "through them)%s", what, ks[0], ks[-1], len(ks), scored,
                 stages.about(clustering.sweep_estimate(ks, took)), done, cached)

    if len(ks) <= 2:   # nothing left to estimate once the ends are done: said before the fits
        log.info("%s at k = %s (%s)%s", what, " and ".join(map(str, ks)), scored, cached)
    return clustering.sweep(points, ks, seed, rules, fit_rows=fit_rows, weights=weights, progress=progress,
                            after_ends=announce, desc=f"k-means sweep k={ks[0]}..{ks[-1]}" if len(ks) > 1
                            else f"k-means k={ks[0]}"), representative


def every_rule_choice(sweep: list[dict], min_cluster_size: int = 1) -> dict[str, int | None]:
    """The k each registered rule picks from `sweep` (a Regrouping's), None where a rule fails or
    no k has clusters of `min_cluster_size`: what the rules would have done with the same fits."""
    curve = eligible(sweep, min_cluster_size)
    out = {}
    for name, rule in _rules().items():
        try:
            out[name] = int(rule.choose([dict(row) for row in curve])) if curve else None
        except Exception as exc:  # noqa: BLE001 - plugin code: one broken rule must not hide the others
            log.warning("k rule %r could not choose (%s: %s)", name, type(exc).__name__, exc)
            out[name] = None
    return out


def eligible(rows: list[dict], min_cluster_size: int) -> list[dict]:
    """The rows of a sweep whose smallest cluster holds at least `min_cluster_size` examples."""
    return [row for row in rows if row["smallest"] >= min_cluster_size]


def _choose(fits: list[clustering.KFit], rule: KRule, choice: KChoice) -> clustering.KFit:
    curve = eligible([fit.row for fit in fits], choice.min_cluster_size)
    if not curve:
        largest = max(fits, key=lambda f: f.row["smallest"])
        raise MixbenchError(f"no k swept gives every cluster at least {choice.min_cluster_size} training examples "
                            f"(the largest smallest cluster is {largest.row['smallest']:g}, at k={largest.k}); "
                            f"lower --min-cluster-size or the k range")
    if len(curve) == 1:
        return next(f for f in fits if f.k == curve[0]["k"])
    k = rule.choose([dict(row) for row in curve])
    chosen = next((f for f in fits if f.k == k and f.row in curve), None)
    if chosen is None:
        raise MixbenchError(f"k rule {choice.rule!r} chose k={k!r}, which is not among the k values it was "
                            f"given ({', '.join(str(row['k']) for row in curve)})")
    return chosen


def _labels(train_x, eval_x, best: clustering.KFit, representative, fits, progress) -> Clustering:
    if representative is None:
        train_labels = clustering.assign_nearest(train_x, best.centroids, progress, "assigning train")
    else:   # a near-duplicate goes where its representative goes
        kept = np.unique(representative)
        kept_labels = clustering.assign_nearest(np.asarray(train_x[kept]), best.centroids, progress, "assigning train")
        train_labels = kept_labels[np.searchsorted(kept, representative)]
    # k-means can leave a centroid with no training point (duplicates, mini-batches): drop it
    # and renumber, so every cluster — and every eval assignment — has training data.
    used = np.unique(train_labels)
    renumber = np.full(best.k, -1, dtype=np.int64)
    renumber[used] = np.arange(used.size)
    eval_labels = clustering.assign_nearest(eval_x, best.centroids[used], progress, "assigning eval")
    clustered = len(train_x) if representative is None else int(np.unique(representative).size)
    return Clustering(k=int(used.size), sweep=[{**fit.row, "chosen": fit.k == best.k} for fit in fits],
                      train_labels=renumber[train_labels], eval_labels=eval_labels,
                      scored_on=min(clustered, clustering.SCORE_SAMPLE), clustered=clustered)


def _chosen_k(result: Clustering) -> int:
    return next(row["k"] for row in result.sweep if row["chosen"])


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


# -- the cache entries: the sweep, and the assignment a choice made --------------------------------

def _digest(*parts) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def _beside(base: Path, what: str) -> Path:
    return base.parent / f"{base.name}-{what}.npz"


def _load_sweep(path: Path | None, ks: list[int]):
    stored = None if path is None else load_npz(path)
    if stored is None:
        return None, None
    try:
        rows = json.loads(str(stored["rows"]))
        bounds = np.concatenate([[0], np.cumsum([row["k"] for row in rows])])
        fits = [clustering.KFit(k=int(row["k"]), row=row, centroids=stored["centroids"][bounds[i]:bounds[i + 1]])
                for i, row in enumerate(rows)]
        if [f.k for f in fits] != list(ks) or bounds[-1] != len(stored["centroids"]):
            raise ValueError("the sweep does not match its k values")
        representative = stored["representative"] if stored["representative"].size else None
        return fits, representative
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("cache entry %s does not hold a sweep (%s); computing it again", path, exc)
        return None, None


def _save_sweep(path: Path | None, fits: list[clustering.KFit], representative) -> None:
    if path is None:
        return
    save_npz(path, rows=np.array(json.dumps([fit.row for fit in fits])),
             centroids=np.concatenate([fit.centroids for fit in fits]),
             representative=np.empty(0, np.int64) if representative is None else representative)


def _load_groups(path: Path | None, n_train: int, n_eval: int) -> Clustering | None:
    stored = None if path is None else load_npz(path)
    if stored is None:
        return None
    try:
        result = Clustering(k=int(stored["k"]), sweep=json.loads(str(stored["sweep"])),
                            train_labels=stored["train_labels"], eval_labels=stored["eval_labels"],
                            scored_on=int(stored["scored_on"]), clustered=int(stored["clustered"]))
        if result.train_labels.shape != (n_train,) or result.eval_labels.shape != (n_eval,):
            raise ValueError("its labels do not match the data")
        _chosen_k(result)
        return result
    except (KeyError, ValueError, TypeError, StopIteration) as exc:
        log.warning("cache entry %s does not hold an assignment (%s); computing it again", path, exc)
        return None


def _save_groups(path: Path | None, g: Clustering) -> None:
    if path is not None:
        save_npz(path, k=g.k, sweep=np.array(json.dumps(g.sweep)), train_labels=g.train_labels,
                 eval_labels=g.eval_labels, scored_on=g.scored_on, clustered=g.clustered)
