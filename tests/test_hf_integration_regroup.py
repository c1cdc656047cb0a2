"""Regroup as a library call (mixbench.integrations.regroup_texts): texts in, a domain per text
out, eval texts on the nearest training cluster, cached where `mixbench regroup` caches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mixbench.integrations import IntegrationError, regroup_texts

MATH = "prime integer equation polynomial"
FOOD = "bake oven recipe garlic"
EXTRA = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"]


def texts(topic: str, n: int) -> list[str]:
    """n distinct texts on one topic: its four words, then one word of no topic."""
    return [f"{topic} {EXTRA[i % len(EXTRA)]}{i // len(EXTRA)}" for i in range(n)]


def test_two_kinds_of_text_become_two_domains_and_eval_texts_join_their_kind():
    train = texts(MATH, 12) + texts(FOOD, 12)
    grouping = regroup_texts(train, ["a prime polynomial equation", "garlic in the oven"],
                             k=2, embedder="tfidf")
    assert grouping.k == 2 and [r["k"] for r in grouping.sweep] == [2]
    math, food = grouping.train_domains[:12], grouping.train_domains[12:]
    assert len(set(math)) == 1 and len(set(food)) == 1 and math[0] != food[0]
    assert grouping.eval_domains == [math[0], food[0]]


def test_the_clustering_is_cached_where_mixbench_regroup_caches():
    train = texts(MATH, 10) + texts(FOOD, 10)
    first = regroup_texts(train, k="2:4", embedder="tfidf")   # the best silhouette over k = 2, 3, 4
    assert [r["k"] for r in first.sweep] == [2, 3, 4] and first.k in (2, 3, 4)
    cached = list(Path(os.environ["MIXBENCH_CACHE"]).rglob("*.npz"))
    assert cached, "nothing was cached"
    again = regroup_texts(train, k="2:4", embedder="tfidf")
    assert again.train_domains == first.train_domains and again.eval_domains is None


@pytest.mark.parametrize("train, k, message", [
    ([], "2", "no training texts"),
    (["a text", 3], "2", "training text 1 is a int"),
    (["a", "b", "c"], "1", "k must be at least 2"),
])
def test_bad_input_is_named(train, k, message):
    with pytest.raises(IntegrationError, match=message):
        regroup_texts(train, k=k)
