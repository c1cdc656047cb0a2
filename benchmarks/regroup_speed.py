"""Regroup speed on this machine, on real CHAMP examples.

1. minilm, the default whole-example embedding (4 windows of 64 pieces per text): its onnx-int8
   backend against the torch backend it replaced (sentence-transformers, the vectors of the first
   versions) on the same texts, in the same process: texts/s of each and the speed-up; the cosine
   of each text's new vector to its torch vector (median, minimum); and whether the clusters agree:
   the k the silhouette rule picks from the torch vectors over --k, then k-means at that k on both
   (same seed), compared by adjusted Rand index. The int8 model is built into a fresh cache first
   (timed apart: a one-time cost).
2. tfidf throughput, and a k sweep over --texts texts with every k rule measured.

Usage: python benchmarks/regroup_speed.py [--minilm-texts N] [--texts N] [--sweep 2:64]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from mixbench.embedders.minilm import MiniLM
from mixbench.embedders.tfidf import Tfidf
from mixbench.tasks.champ import Champ

from mixbench.regroup import clustering, example_text, regroup_vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minilm-texts", type=int, default=1_000,
                        help="distinct CHAMP training texts embedded by both minilm backends, in the task's order")
    parser.add_argument("--texts", type=int, default=20_000, help="texts for tfidf and the k sweep")
    parser.add_argument("--sweep", default="2:64")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")

    data = Champ().load()
    distinct = list(dict.fromkeys(example_text(e) for e in data.train))
    texts = distinct[: args.minilm_texts]
    compare_minilm(texts, clustering.parse_k(args.sweep))

    pool = [example_text(e) for e in data.train + data.eval]
    many = [pool[i % len(pool)] for i in range(args.texts)]  # CHAMP has 19.2k: wrap past that
    tfidf = Tfidf()
    start = time.perf_counter()
    tfidf.fit(many)
    x = tfidf.embed(many)
    seconds = time.perf_counter() - start
    print(f"tfidf:  {len(many) / seconds:8.1f} texts/s  (fit + embed of {len(many)} texts, {seconds:.1f} s)")
    sweep(x, args.sweep)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def compare_minilm(texts: list[str], ks: list[int]) -> None:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MIXBENCH_CACHE"] = cache   # the int8 model is built afresh, as on a new machine
        new, old = MiniLM(), MiniLM(backend="torch")
        start = time.perf_counter()
        new.embed(texts[:1])
        print(f"minilm onnx-int8: model built and loaded in {time.perf_counter() - start:.1f} s (once per machine)")
        old.embed(texts[:1])   # the torch model loads outside the timing too
        old_seconds, old_x = _timed(lambda: old.embed(texts))
        new_seconds, new_x = _timed(lambda: new.embed(texts))
    windows = [w for text_windows in new._windows_of(texts) for w, _ in text_windows]
    print(f"minilm: {len(texts)} CHAMP texts, {len(windows)} windows of which {len(set(windows))} distinct")
    print(f"  torch (the vectors before):   {len(texts) / old_seconds:7.1f} texts/s ({old_seconds:.1f} s)")
    print(f"  onnx-int8 (the default now):  {len(texts) / new_seconds:7.1f} texts/s ({new_seconds:.1f} s)")
    print(f"  speed-up: {old_seconds / new_seconds:.2f}x")
    cosine = (old_x * new_x).sum(1) / (np.linalg.norm(old_x, axis=1) * np.linalg.norm(new_x, axis=1))
    print(f"  cosine to the torch vector: median {np.median(cosine):.4f}, minimum {cosine.min():.4f}, "
          f"texts below 0.98: {(cosine < 0.98).sum()}")
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    ks = [k for k in ks if k < len(texts)]
    chosen = regroup_vectors(old_x, old_x[:1], ks, seed=0).k
    centroids = clustering.fit_centroids(old_x, chosen, seed=0)
    old_labels = clustering.assign_nearest(old_x, centroids)
    # Whether each text stays in its cluster: the new vectors given the torch clustering's centroids,
    # and k-means on the new vectors started from them. For scale, k-means' own spread: the torch
    # vectors clustered again with another seed.
    same_centroids = clustering.assign_nearest(new_x, centroids)
    warm = KMeans(n_clusters=chosen, init=centroids, n_init=1).fit(new_x).labels_
    reseeded = clustering.assign_nearest(old_x, clustering.fit_centroids(old_x, chosen, seed=1))
    print(f"  clusters at the silhouette's k = {chosen} (from the torch vectors), ARI to the torch clusters: "
          f"new vectors to the same centroids {adjusted_rand_score(old_labels, same_centroids):.4f}, k-means on "
          f"the new vectors from those centroids {adjusted_rand_score(old_labels, warm):.4f} (k-means on the "
          f"torch vectors with another seed: {adjusted_rand_score(old_labels, reseeded):.4f})")


def sweep(x: np.ndarray, spec: str) -> None:
    ks = clustering.parse_k(spec)
    seconds, result = _timed(lambda: regroup_vectors(x, x[:1], ks, seed=0))
    print(f"k sweep {spec} over {x.shape[0]}×{x.shape[1]} with every k rule measured: {seconds:.1f} s "
          f"({seconds / len(ks):.2f} s per k); silhouette's k {result.k}")
    print(f"nearest-centroid assignment of all {x.shape[0]} texts: "
          f"{_timed(lambda: clustering.assign_nearest(x, np.ascontiguousarray(x[:64])))[0] * 1e3:.1f} ms")


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


if __name__ == "__main__":
    main()
