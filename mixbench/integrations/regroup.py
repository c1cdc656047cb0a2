"""Regroup as a library call: texts in, a domain per text out (R&B, paper Alg. 2).

    grouping = regroup_texts(train["text"], eval["text"], k="2:16", embedder="tfidf")
    train = train.add_column("domain", grouping.train_domains)
    evaluation = evaluation.add_column("domain", grouping.eval_domains)

It is `mixbench regroup`'s own clustering (mixbench.regroup): embed every training text, k-means
for each k, let a k rule pick k (the best silhouette unless `k_rule` names another; every rule's
measures per k are in `sweep`), and give each eval text the nearest training centroid, so
every eval domain has training data. Embeddings and clusterings are cached in the same cache
(`~/.cache/mixbench`, or `MIXBENCH_CACHE`), keyed by the embedder and a hash of the texts: the same
texts are never embedded twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mixbench.embedder import Embedder
from mixbench.integrations.errors import IntegrationError
from mixbench.regroup import KChoice, cluster_name, regroup
from mixbench.regroup.clustering import parse_k
from mixbench.task import Example, TaskData, TaskInfo

# Not a task of mixbench's: the cache keeps the user's texts apart from every task's.
CACHE_NAME = "user-texts"


@dataclass(frozen=True)
class TextGrouping:
    train_domains: list[str]        # "c00", "c01", ... one per training text
    eval_domains: list[str] | None  # the nearest training cluster of each eval text
    k: int
    silhouette: float | None        # at the chosen k
    sweep: list[dict]               # {"k", "inertia", "smallest", each rule's measures} for every k tried
    embedder: str


def regroup_texts(train_texts: Sequence[str], eval_texts: Sequence[str] | None = None, *, k: str | int = "2:16",
                  embedder: str | Embedder = "tfidf", seed: int = 0, sample: int | None = None,
                  k_rule: str = "silhouette", progress: bool = False) -> TextGrouping:
    """Cluster `train_texts` into domains (k fixed, or the best silhouette over "START:STOP[:STEP]")
    and give each of `eval_texts` the nearest one. `embedder`: a registered name (tfidf, minilm)
    or an Embedder; `sample` fits k-means on that many training texts (all are assigned); `k_rule`
    how k is picked from the range (a name in mixbench.registry.k_rules)."""
    from mixbench.registry import embedders

    train_texts, eval_texts = _texts(train_texts, "training"), None if eval_texts is None else _texts(eval_texts,
                                                                                                     "evaluation")
    try:
        ks = parse_k(str(k))
    except ValueError as exc:
        raise IntegrationError(str(exc).replace("--k", "k")) from None
    if isinstance(embedder, str):
        embedder = embedders.create(embedder)
    info = TaskInfo(name=CACHE_NAME, description="texts given to regroup_texts", source="the caller",
                    license="the caller's", version="1")
    # Regroup needs an eval split; without one, one training text stands in and its label is dropped.
    stand_in = eval_texts is None
    data = TaskData(train=[Example(prompt=t, response="", domain="all") for t in train_texts],
                    eval=[Example(prompt=t, response="", domain="all") for t in (eval_texts or train_texts[:1])])
    grouping = regroup(data, info, embedder, ks, seed=seed, sample=sample, choice=KChoice(rule=k_rule),
                       progress=progress)
    return TextGrouping(
        train_domains=[cluster_name(int(j)) for j in grouping.train_labels],
        eval_domains=None if stand_in else [cluster_name(int(j)) for j in grouping.eval_labels],
        k=grouping.k, silhouette=grouping.silhouette, sweep=grouping.sweep, embedder=grouping.embedder)


def _texts(texts: Sequence[str], what: str) -> list[str]:
    texts = list(texts)
    if not texts:
        raise IntegrationError(f"no {what} texts to regroup")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise IntegrationError(f"{what} text {bad} is a {type(texts[bad]).__name__}, not a string")
    return texts
