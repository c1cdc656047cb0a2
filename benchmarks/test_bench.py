"""pytest-benchmark suite (`tox -e bench`): the training step with and without the gradient tap,
R&B's update at the default task's size (G q as M (Mᵀ q), and through the full Gram as before),
the sketched accumulator's add at SmolLM2's head size, and one k-means fit."""

from contextlib import nullcontext

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mixbench.algorithms.rnb import balance_mixture, balance_scores, gram_matrix, mixture_from_scores

from mixbench.engine.accumulator import SketchedAccumulator
from mixbench.engine.meter import Meter
from mixbench.engine.tap import GradientTap
from mixbench.models.gpt import GPT, GPTConfig
from mixbench.regroup import clustering
from mixbench.workloads.text import IGNORE

M, B, T = 72, 16, 256


def _step_fn(tapped: bool):
    torch.manual_seed(0)
    model = GPT(GPTConfig(seq_len=T))
    tap = GradientTap(model.head, M, Meter()) if tapped else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (B, T))
    y = torch.roll(x, -1, 1)
    y[:, : T // 2] = IGNORE
    domains = torch.arange(B) % M

    def step():
        with tap.batch(domains) if tap is not None else nullcontext():
            logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, 257), y.reshape(-1), ignore_index=IGNORE)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


@pytest.mark.parametrize("tapped", [False, True], ids=["plain", "tapped"])
def test_training_step(benchmark, tapped):
    benchmark.pedantic(_step_fn(tapped), rounds=5, iterations=1, warmup_rounds=1)


def _rnb_inputs():
    rng = np.random.default_rng(0)
    return rng.normal(size=(M, 257 * 128)).astype(np.float32), rng.integers(1, 20, M), np.full(M, 1 / M)


def test_rnb_update(benchmark):
    sums, counts, q = _rnb_inputs()
    benchmark(lambda: mixture_from_scores(balance_scores(sums, counts, q), 3.0))


def test_rnb_update_through_the_gram(benchmark):
    sums, counts, q = _rnb_inputs()
    benchmark(lambda: balance_mixture(gram_matrix(sums, counts), q, 3.0))


def test_sketched_add_at_smollm2_head(benchmark):
    """One domain's V × h term into a 64 MB / 100-domain sketch (V = 49,152, h = 576)."""
    sketch = SketchedAccumulator(1, (49152, 576), 291, "cpu")
    grad = torch.randn(49152, 576)
    benchmark.pedantic(lambda: sketch.add(0, grad), rounds=5, iterations=1, warmup_rounds=1)


def test_kmeans_fit(benchmark):
    x = np.random.default_rng(0).normal(size=(5000, 64)).astype(np.float32)
    benchmark.pedantic(lambda: clustering.fit_centroids(x, 16, 0), rounds=3, iterations=1)
