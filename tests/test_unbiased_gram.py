"""rnb's unbiased Gram: the tap's halves, the estimator, and a run with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mixbench.algorithms.rnb import RnB, balance_scores, gram_matrix, unbiased_balance_scores
from mixbench.tasks.synthetic import Synthetic

from mixbench.engine.accumulator import HalvesAccumulator, make_accumulator
from mixbench.engine.meter import Meter
from mixbench.engine.tap import GradientTap
from mixbench.engine.trainer import train
from mixbench.models.gpt import GPT, GPTConfig
from mixbench.strategy import Signal


def test_examples_of_a_domain_alternate_between_the_halves_across_batches():
    halves = make_accumulator(3, (5, 4), "cpu", 1024, halves=True)
    assert isinstance(halves, HalvesAccumulator)
    first = halves.route(torch.tensor([0, 0, 2, 0]))
    assert first.tolist() == [0, 1, 4, 0]          # domain 0: halves A, B, A; domain 2: A
    halves.add_counts(first)
    second = halves.route(torch.tensor([0, 2, 2]))
    assert second.tolist() == [1, 5, 4]            # domain 0 goes on with B; domain 2 with B, A
    halves.add_counts(second)
    assert halves.snapshot().half_counts.tolist() == [[2, 0, 2], [2, 0, 1]]


def test_the_tap_with_halves_gives_the_plain_tap_sums_split_in_two():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=257, seq_len=8, n_layer=1, n_head=2, n_embd=16)
    models = [GPT(cfg), GPT(cfg)]
    models[1].load_state_dict(models[0].state_dict())
    plain = GradientTap(models[0].head, 3, Meter())
    halves = make_accumulator(3, (257, 16), "cpu", 1024, halves=True)
    split = GradientTap(models[1].head, 3, Meter(), accumulator=halves)
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        x, domains = torch.randint(0, 257, (6, 8), generator=g), torch.randint(0, 3, (6,), generator=g)
        for model, tap in zip(models, (plain, split)):
            with tap.batch(domains):
                loss = model(x).logsumexp(-1).mean()
            loss.backward()
    a, b = plain.snapshot_and_reset(), split.snapshot_and_reset()
    np.testing.assert_allclose(b.sums, a.sums, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(b.counts, a.counts)
    np.testing.assert_allclose(b.half_sums.sum(0), a.sums, rtol=1e-5, atol=1e-6)
    assert (np.abs(b.half_counts[0] - b.half_counts[1]) <= 1).all()


def test_unbiased_scores_are_the_gram_with_the_halves_diagonal():
    rng = np.random.default_rng(0)
    m, dim = 5, 30
    half_sums, half_counts, q = rng.normal(size=(2, m, dim)), rng.integers(1, 9, (2, m)), rng.dirichlet(np.ones(m))
    gram = gram_matrix(half_sums.sum(0), half_counts.sum(0))
    a, b = half_sums[0] / half_counts[0][:, None], half_sums[1] / half_counts[1][:, None]
    np.fill_diagonal(gram, (a * b).sum(1))
    np.testing.assert_allclose(unbiased_balance_scores(half_sums, half_counts, q), gram @ q, rtol=1e-12)
    assert not np.allclose(unbiased_balance_scores(half_sums, half_counts, q),
                           balance_scores(half_sums.sum(0), half_counts.sum(0), q))


def test_rnb_asks_for_halves_only_with_the_unbiased_estimator():
    assert Signal.DOMAIN_GRADIENT_HALVES not in RnB().signals
    assert Signal.DOMAIN_GRADIENT_HALVES in RnB(gram_estimator="unbiased").signals
    with pytest.raises(ValueError, match="gram_estimator must be one of paper, unbiased"):
        RnB(gram_estimator="exact").check_params()


def test_a_run_with_the_unbiased_estimator_updates_and_doubles_only_the_accumulators():
    task = Synthetic()
    data = task.load()
    cfg = task.budget.override(steps=30, steps_per_round=10)
    paper = train(data, RnB(), cfg, progress=False)
    unbiased = train(data, RnB(gram_estimator="unbiased"), cfg, progress=False)
    assert unbiased.tap_accumulator.startswith("exact, per domain half")
    # Round 0 samples from p_0 alike; the halves' products add up the head's gradient in another order.
    np.testing.assert_allclose(unbiased.train_losses[:10], paper.train_losses[:10], rtol=1e-5)
    assert unbiased.rounds[1].mixture != paper.rounds[1].mixture       # the diagonal changed the update
    assert unbiased.rounds[1].mixture != unbiased.rounds[0].mixture
