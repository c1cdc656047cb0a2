"""Regroup at scale: time and peak memory of Regroup on a million synthetic vectors and on 100k real
texts, each in a process of its own (peak resident memory, memory-mapped pages included, as the
kernel counts it: ru_maxrss).

  vectors  N synthetic 384-d unit vectors (a mixture of 50 Gaussian clusters), written in chunks to
           a memory-mapped file, then Regroup's clustering of them: the k sweep with every k rule
           measured on the scoring sample, the chosen k, every training and eval vector assigned
           in chunks.
  texts    N real English texts (WordNet 3.0 glosses, from Debian's wordnet-base: `apt-get download
           wordnet-base && dpkg -x wordnet-base_*.deb DIR`, then --wordnet DIR/usr/share/wordnet),
           through the whole of Regroup with the default embedder (minilm, onnx-int8) into a fresh
           cache: embedding streamed to memory-mapped files, then the clustering.

Usage: python benchmarks/regroup_scale.py [--vectors 1000000] [--texts 100000] [--wordnet DIR]
       [--k 2:64] [--only vectors|texts]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--wordnet", default="/usr/share/wordnet", help="folder of WordNet's data.* files")
    parser.add_argument("--k", default="2:64")
    parser.add_argument("--only", choices=("vectors", "texts"))
    parser.add_argument("--part", choices=("vectors", "texts"), help=argparse.SUPPRESS)   # the child's job
    args = parser.parse_args()
    if args.part:
        print(json.dumps({"vectors": vectors, "texts": texts}[args.part](args)))
        return
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    for part in ("vectors", "texts"):
        if args.only in (None, part):
            child = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--part", part], stdout=subprocess.PIPE,
                                   text=True)
            if child.returncode != 0:
                sys.exit(f"the {part} part failed (exit {child.returncode})")
            report(part, json.loads(child.stdout.strip().splitlines()[-1]))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def report(part: str, figures: dict) -> None:
    stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in figures["seconds"].items())
    print(f"{part}: {figures['what']}\n  {stages}; total {sum(figures['seconds'].values()):.0f} s; "
          f"peak memory {figures['peak_mib'] / 1024:.2f} GiB; chosen k {figures['k']} (silhouette)")


def vectors(args) -> dict:
    from mixbench.regroup import clustering, regroup_vectors

    n, n_eval = args.vectors, max(1, args.vectors // 100)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        train = synthetic(Path(folder) / "train.npy", n, seed=0)
        evaluation = synthetic(Path(folder) / "eval.npy", n_eval, seed=1)
        written = time.perf_counter() - started
        started = time.perf_counter()
        result = regroup_vectors(train, evaluation, clustering.parse_k(args.k), seed=0, progress=True)
        clustered = time.perf_counter() - started
    return {"what": f"{n:,} synthetic {DIM}-d vectors (+ {n_eval:,} eval) memory-mapped, k {args.k}, k-means fitted "
                    f"on {min(n, clustering.FIT_SAMPLE):,}, rules measured on {result.scored_on:,}",
            "seconds": {"writing the vectors": written, "regroup": clustered},
            "peak_mib": peak_mib(), "k": result.k}


def synthetic(path: Path, n: int, seed: int, chunk: int = 65_536) -> np.ndarray:
    """n unit vectors around 50 fixed random centres, written `chunk` rows at a time."""
    centres = np.random.default_rng(12345).normal(size=(50, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, DIM))
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        x = centres[rng.integers(0, 50, rows)] + 0.8 * rng.normal(size=(rows, DIM)).astype(np.float32)
        out[start:start + rows] = x / np.linalg.norm(x, axis=1, keepdims=True)
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def texts(args) -> dict:
    glosses = wordnet_glosses(Path(args.wordnet))
    if len(glosses) < args.texts:
        raise SystemExit(f"only {len(glosses)} WordNet glosses under {args.wordnet}; --texts {args.texts} is too many")
    rng = np.random.default_rng(0)
    chosen = [glosses[i] for i in rng.permutation(len(glosses))[: args.texts + args.texts // 10]]
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MIXBENCH_CACHE"] = cache
        from mixbench import registry
        from mixbench.regroup import clustering, regroup_vectors
        from mixbench.regroup.embeddings import embed_with_cache
        from mixbench.task import TaskInfo

        info = TaskInfo(name="wordnet", description="WordNet glosses", source="wordnet-base", license="WordNet",
                        version="3.0")
        embedder = registry.embedders.create("minilm")
        started = time.perf_counter()
        embedder.embed(["warm up"])   # builds the int8 model into the fresh cache: once per machine
        built = time.perf_counter() - started
        started = time.perf_counter()
        train, evaluation, _, base = embed_with_cache(info, embedder, chosen[: args.texts], chosen[args.texts:],
                                                      progress=True)
        embedded = time.perf_counter() - started
        started = time.perf_counter()
        result = regroup_vectors(train, evaluation, clustering.parse_k(args.k), seed=0, progress=True, cache=base)
        clustered = time.perf_counter() - started
    return {"what": f"{args.texts:,} WordNet glosses (+ {len(chosen) - args.texts:,} eval), minilm onnx-int8, "
                    f"k {args.k}", "seconds": {"building the int8 model": built, "embedding": embedded,
                                               "clustering": clustered},
            "peak_mib": peak_mib(), "k": result.k}


def wordnet_glosses(folder: Path) -> list[str]:
    """'word, word: gloss' for every synset of WordNet's data.noun, .verb, .adj and .adv."""
    out = []
    for part in ("noun", "verb", "adj", "adv"):
        path = folder / f"data.{part}"
        if not path.is_file():
            raise SystemExit(f"no WordNet data at {path} (see this script's docstring)")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue   # the licence header
            fields, gloss = line.split("|", 1)
            parts = fields.split()
            words = [parts[4 + 2 * i].replace("_", " ") for i in range(int(parts[3], 16))]
            out.append(f"{', '.join(words)}: {gloss.strip()}")
    return out


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
