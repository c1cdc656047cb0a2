"""The sketched accumulator: unbiased inner products, linear, chosen by the memory budget, and
R&B's mixture from it close to the exact one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mixbench.algorithms.rnb import RnB, balance_scores, mixture_from_scores
from mixbench.tasks.synthetic import Synthetic

from mixbench.engine.accumulator import MIB, ExactAccumulator, SketchedAccumulator, exact_bytes, make_accumulator
from mixbench.engine.meter import Meter
from mixbench.engine.tap import GradientTap
from mixbench.engine.trainer import train
from mixbench.errors import MixbenchError
from mixbench.models.gpt import GPT, GPTConfig

V, H = 300, 24


def _low_rank(seed: int, rank: int = 2) -> torch.Tensor:
    """A V × H gradient of low rank, as an LM head's is (Sᵀ A over a few tokens)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(V, rank, generator=g) @ torch.randn(rank, H, generator=g)


def _sketched_inner(x, y, seed: int, rows: int = 10, groups: int | None = None) -> float:
    sketch = SketchedAccumulator(2, (V, H), rows, "cpu", seed=seed, groups=groups)
    sketch.add(0, x)
    sketch.add(1, y)
    return float((sketch.sums[0] * sketch.sums[1]).sum())


def test_sketched_inner_products_are_unbiased():
    x, y = _low_rank(0), _low_rank(1)
    y = y + 0.5 * x
    estimates = np.array([_sketched_inner(x, y, seed) for seed in range(400)])
    exact = float((x * y).sum())
    standard_error = estimates.std() / np.sqrt(len(estimates))
    assert abs(estimates.mean() - exact) < 4 * standard_error
    assert standard_error < 0.05 * abs(exact)     # and the estimates are informative at all


def test_shifted_groups_cut_the_error_of_low_rank_gradients():
    """One group (a plain row hash) lets rows of the same column collide 1/rows of the time; the
    shifts make that 1/(rows·groups). It matters for gradients that share their column space
    (aligned domains, and every domain with itself: the Gram's diagonal), where two colliding
    rows of one column add a full-size error. Replacing the shifted sketch by the plain one must
    show."""
    g = torch.Generator().manual_seed(2)
    columns = torch.randn(1, H, generator=g)
    x, y = torch.randn(V, 1, generator=g) @ columns, torch.randn(V, 1, generator=g) @ columns
    exact = float((x * y).sum())

    def spread(groups):
        return np.std([_sketched_inner(x, y, seed, groups=groups) - exact for seed in range(200)])

    assert spread(8) < 0.6 * spread(1)


def test_the_sketch_is_linear_in_what_it_adds():
    x, y = _low_rank(4), _low_rank(5)
    apart = SketchedAccumulator(1, (V, H), 10, "cpu", seed=3)
    apart.add(0, x)
    apart.add(0, y)
    together = SketchedAccumulator(1, (V, H), 10, "cpu", seed=3)
    together.add(0, x + y)
    torch.testing.assert_close(apart.sums, together.sums, rtol=1e-5, atol=1e-5)
    apart.reset()
    assert torch.count_nonzero(apart.sums) == 0


def test_the_budget_picks_exact_or_the_largest_sketch_that_fits():
    shape = (49152, 576)   # SmolLM2-135M's head
    assert isinstance(make_accumulator(4, (257, 128), "cpu", 1024), ExactAccumulator)
    assert exact_bytes(100, shape) / MIB == pytest.approx(10800)
    sketch = make_accumulator(100, shape, "meta", 64)
    assert isinstance(sketch, SketchedAccumulator)
    assert sketch.nbytes <= 64 * MIB and sketch.rows == 291
    with pytest.raises(MixbenchError, match=r"--tap-memory 1 MiB is too small for 100 domains .* needs at least"):
        make_accumulator(100, shape, "meta", 1)


def test_the_tap_with_a_sketch_still_gives_autograds_weight_gradient():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=257, seq_len=8, n_layer=1, n_head=2, n_embd=16)
    model, reference = GPT(cfg), GPT(cfg)
    reference.load_state_dict(model.state_dict())
    x = torch.randint(0, 257, (4, 8))
    domains = torch.tensor([0, 1, 1, 2])
    sketch = SketchedAccumulator(3, (257, 16), 40, "cpu")
    tap = GradientTap(model.head, 3, Meter(), accumulator=sketch)
    with tap.batch(domains):
        model(x).logsumexp(-1).mean().backward()
    reference(x).logsumexp(-1).mean().backward()
    torch.testing.assert_close(model.head.weight.grad, reference.head.weight.grad, rtol=1e-5, atol=1e-6)
    assert sketch.counts.tolist() == [1, 2, 1]
    assert torch.count_nonzero(sketch.sums) > 0


@pytest.fixture(scope="module")
def synthetic():
    task = Synthetic()
    return task, task.load()


def test_a_run_over_budget_sketches_and_keeps_rnbs_mixture_close(synthetic):
    task, data = synthetic
    cfg = task.budget.override(steps=30, steps_per_round=10)
    exact = train(data, RnB(), cfg, progress=False)
    # 4 domains × 257 × 32 floats is 0.13 MiB: a 0.06 MiB budget forces a sketch of ~120 rows.
    sketched = train(data, RnB(), cfg.override(tap_memory=0.06), progress=False)
    assert exact.tap_accumulator.startswith("exact")
    assert sketched.tap_accumulator.startswith("sketched")
    for a, b in zip(exact.rounds, sketched.rounds):
        assert np.abs(np.array(a.mixture) - np.array(b.mixture)).sum() < 0.02


def test_balance_on_sketched_sums_is_close_to_the_exact_one():
    """At a small scale of the benchmark's setting: m low-rank domain gradients sharing a common
    part; the sketch's G q within a few percent and the mixture within 0.02 in L1."""
    m, rng = 12, np.random.default_rng(0)
    common = _low_rank(100, rank=3)
    grads = [common + 0.7 * _low_rank(200 + i, rank=2) for i in range(m)]
    counts, q = rng.integers(5, 20, m), rng.dirichlet(np.ones(m))
    exact = ExactAccumulator(m, (V, H), "cpu")
    sketch = SketchedAccumulator(m, (V, H), 60, "cpu", seed=1)
    for i, g in enumerate(grads):
        exact.add(i, g)
        sketch.add(i, g)
    gq = balance_scores(exact.snapshot().sums, counts, q)
    gq_sketch = balance_scores(sketch.snapshot().sums, counts, q)
    assert np.linalg.norm(gq_sketch - gq) / np.linalg.norm(gq) < 0.05
    assert np.abs(mixture_from_scores(gq_sketch, 3.0) - mixture_from_scores(gq, 3.0)).sum() < 0.02
