"""What each cluster of a regrouping holds, in words: for `mixbench regroup` to print."""

from __future__ import annotations

import numpy as np

from mixbench.regroup.regrouping import Regrouping, cluster_name, example_text
from mixbench.task import TaskData

TOP_TERMS = 6


def describe_clusters(data: TaskData, grouping: Regrouping) -> list[dict]:
    """Per cluster: size, share of the eval set, the original domains it draws from most, and
    its most distinguishing words (mean TF-IDF in the cluster minus the mean over all)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [example_text(e) for e in data.train]
    vectorizer = TfidfVectorizer(stop_words="english", max_features=20000, sublinear_tf=True,
                                 min_df=2 if len(texts) >= 50 else 1)
    try:
        tfidf = vectorizer.fit_transform(texts)
        vocab = np.array(vectorizer.get_feature_names_out())
        overall = np.asarray(tfidf.mean(axis=0)).ravel()
    except ValueError:  # no words at all
        tfidf, vocab, overall = None, np.array([]), None
    eval_counts = np.bincount(grouping.eval_labels, minlength=grouping.k)
    originals = np.array([e.domain for e in data.train])
    rows = []
    for j in range(grouping.k):
        members = np.flatnonzero(grouping.train_labels == j)
        terms = []
        if tfidf is not None and members.size:
            lift = np.asarray(tfidf[members].mean(axis=0)).ravel() - overall
            terms = vocab[np.argsort(-lift)[:TOP_TERMS]].tolist()
        names, counts = np.unique(originals[members], return_counts=True)
        top = [f"{names[i]} ({counts[i]})" for i in np.argsort(-counts)[:2]]
        rows.append({"cluster": cluster_name(j), "train": int(members.size), "eval": int(eval_counts[j]),
                     "eval_share": float(eval_counts[j] / max(1, eval_counts.sum())), "top_terms": terms,
                     "top_original_domains": top})
    return rows
