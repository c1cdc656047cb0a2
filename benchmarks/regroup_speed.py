"""Regroup speed on this machine: embedding throughput of each embedder on real CHAMP examples,
and the time of a k-means sweep over 20k texts. Usage: python benchmarks/regroup_speed.py
[--texts N] [--sweep 2:64] [--minilm-texts N]"""

from __future__ import annotations

import argparse
import time

import numpy as np
from mixbench.embedders.minilm import MiniLM
from mixbench.embedders.tfidf import Tfidf
from mixbench.tasks.champ import Champ

from mixbench.regroup import clustering, example_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=20_000, help="texts for tfidf and the k sweep")
    parser.add_argument("--minilm-texts", type=int, default=1_000, help="texts timed for minilm (it is slow)")
    parser.add_argument("--sweep", default="2:64")
    args = parser.parse_args()

    data = Champ().load()
    pool = [example_text(e) for e in data.train + data.eval]
    texts = [pool[i % len(pool)] for i in range(args.texts)]  # CHAMP has 19.2k: wrap past that

    tfidf = Tfidf()
    start = time.perf_counter()
    tfidf.fit(texts)
    x = tfidf.embed(texts)
    seconds = time.perf_counter() - start
    print(f"tfidf:  {len(texts) / seconds:8.1f} texts/s  (fit + embed of {len(texts)} texts, {seconds:.1f} s)")

    for minilm in (MiniLM(), MiniLM(chunks=1)):   # the default's windows, then the head-only mode
        minilm.embed(texts[:16])  # load the model outside the timing
        start = time.perf_counter()
        minilm.embed(texts[: args.minilm_texts])
        seconds = time.perf_counter() - start
        print(f"minilm: {args.minilm_texts / seconds:8.1f} texts/s  ({args.minilm_texts} texts, up to "
              f"{minilm.chunks} window(s) of {minilm.max_tokens} tokens, {seconds:.1f} s)")

    ks = clustering.parse_k(args.sweep)
    start = time.perf_counter()
    fits = clustering.sweep(x, ks, seed=0)
    seconds = time.perf_counter() - start
    best = clustering.best_by_silhouette(fits)
    print(f"k sweep {args.sweep} over {x.shape[0]}×{x.shape[1]}: {seconds:.1f} s "
          f"({seconds / len(ks):.2f} s per k); best k {best.k}, silhouette {best.silhouette:.4f}")
    print(f"nearest-centroid assignment of all {x.shape[0]} texts: "
          f"{_time(lambda: clustering.assign_nearest(x, best.centroids)) * 1e3:.1f} ms")


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
