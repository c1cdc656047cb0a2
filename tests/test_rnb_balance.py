"""R&B Balance: the Gram matrix, the softmax update and the RnB strategy around them."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from mixbench.algorithms.rnb import (
    RnB,
    UndefinedUpdate,
    balance_flops,
    balance_mixture,
    balance_scores,
    gram_flops,
    gram_matrix,
)
from scipy.special import softmax

from mixbench.engine.meter import Meter
from mixbench.engine.probe import RunProbe
from mixbench.mixture import Mixture
from mixbench.strategy import DomainGradients, RoundFeedback, RunContext, Signal

SEEDS = [0, 1, 2, 3, 4]
SHAPES = [(1, 1), (2, 5), (3, 17), (5, 64), (8, 3)]


def _random_psd(rng, m, rank=None):
    a = rng.normal(size=(m, rank or m + 2))
    return a @ a.T


def _random_q(rng, m):
    q = rng.random(m) + 0.05
    return q / q.sum()


def _entropy(p):
    p = np.asarray(p)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


# ---------------------------------------------------------------- gram_matrix


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("m, dim", SHAPES)
def test_gram_matrix_matches_explicit_double_loop(seed, m, dim):
    rng = np.random.default_rng(seed)
    sums = rng.normal(size=(m, dim)) * rng.uniform(0.1, 10)
    counts = rng.integers(1, 50, size=m)

    expected = np.empty((m, m))
    for i in range(m):
        for j in range(m):
            dot = sum(float(sums[i, k]) * float(sums[j, k]) for k in range(dim))
            expected[i, j] = dot / (float(counts[i]) * float(counts[j]))

    G = gram_matrix(sums, counts)
    assert G.shape == (m, m)
    assert G.dtype == np.float64
    np.testing.assert_allclose(G, expected, rtol=1e-10, atol=1e-12)
    # Symmetric and positive semi-definite (a Gram matrix).
    np.testing.assert_array_equal(G, G.T)
    assert np.linalg.eigvalsh(G).min() >= -1e-9 * max(1.0, np.abs(G).max())


def test_gram_matrix_accepts_float32_sums_and_computes_in_float64():
    rng = np.random.default_rng(7)
    sums = rng.normal(size=(3, 1000)).astype(np.float32)
    counts = np.array([4, 5, 6], dtype=np.int64)
    G = gram_matrix(sums, counts)
    assert G.dtype == np.float64
    s64 = sums.astype(np.float64)
    expected = (s64 / counts[:, None]) @ (s64 / counts[:, None]).T
    np.testing.assert_allclose(G, expected, rtol=1e-12)


@pytest.mark.parametrize("counts", [[0, 3, 4], [3, 0, 0], [2, -1, 5]])
def test_gram_matrix_refuses_a_domain_without_examples(counts):
    sums = np.ones((3, 4))
    with pytest.raises(UndefinedUpdate, match="drew no examples"):
        gram_matrix(sums, np.array(counts))


def test_gram_matrix_refuses_mismatched_shapes():
    with pytest.raises(ValueError):
        gram_matrix(np.ones((3, 4)), np.ones(2))
    with pytest.raises(ValueError):
        gram_matrix(np.ones(4), np.ones(1))


# ---------------------------------------------------------------- balance_mixture


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("m", [1, 2, 3, 6, 10])
@pytest.mark.parametrize("lam", [0.1, 1.0, 3.0, 25.0])
def test_balance_mixture_matches_independent_softmax(seed, m, lam):
    rng = np.random.default_rng(seed)
    G = _random_psd(rng, m)
    q = _random_q(rng, m)

    gq = np.einsum("ij,j->i", G, q)
    expected = softmax(lam * gq / np.sqrt(np.sum(gq**2)))

    p = balance_mixture(G, q, lam)
    assert p.shape == (m,)
    np.testing.assert_allclose(p, expected, rtol=1e-12, atol=1e-14)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    Mixture(p, num_domains=m)  # always a valid mixture


def test_balance_mixture_is_invariant_to_the_scale_of_g():
    rng = np.random.default_rng(11)
    G, q = _random_psd(rng, 4), _random_q(rng, 4)
    p = balance_mixture(G, q, 3.0)
    np.testing.assert_allclose(balance_mixture(1e-8 * G, q, 3.0), p, rtol=1e-10)
    np.testing.assert_allclose(balance_mixture(1e8 * G, q, 3.0), p, rtol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_tiny_lambda_gives_uniform(seed):
    rng = np.random.default_rng(seed)
    m = 5
    p = balance_mixture(_random_psd(rng, m), _random_q(rng, m), 1e-9)
    np.testing.assert_allclose(p, np.full(m, 1 / m), rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_large_lambda_concentrates_on_argmax_of_gq(seed):
    rng = np.random.default_rng(seed)
    m = 5
    G, q = _random_psd(rng, m), _random_q(rng, m)
    gq = G @ q
    top2 = np.sort(gq / np.linalg.norm(gq))[-2:]
    assert top2[1] - top2[0] > 2e-3, "test data: the argmax must be clear of the runner-up"

    p = balance_mixture(G, q, 1e4)
    assert int(np.argmax(p)) == int(np.argmax(gq))
    assert p[np.argmax(gq)] > 0.999
    assert np.all(np.isfinite(p))


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_decreases_as_lambda_grows(seed):
    rng = np.random.default_rng(seed)
    m = 6
    G, q = _random_psd(rng, m), _random_q(rng, m)
    lams = [1e-6, 0.01, 0.1, 0.5, 1.0, 3.0, 10.0, 30.0, 100.0]
    entropies = [_entropy(balance_mixture(G, q, lam)) for lam in lams]
    assert entropies[0] == pytest.approx(np.log(m), abs=1e-6)
    assert all(a > b for a, b in zip(entropies, entropies[1:])), entropies


def test_gq_zero_is_undefined():
    # All-zero Gram: every mean gradient is zero.
    with pytest.raises(UndefinedUpdate):
        balance_mixture(np.zeros((3, 3)), np.full(3, 1 / 3), 3.0)
    # A non-zero Gram with G q = 0: g_1 = -g_2 and q uniform (eval domains mismatch the train
    # ones), the case where the paper's reference code produced NaN.
    g = np.array([[1.0, 2.0], [-1.0, -2.0]])
    G = gram_matrix(g, np.array([1, 1]))
    assert np.any(G != 0)
    with pytest.raises(UndefinedUpdate):
        balance_mixture(G, np.array([0.5, 0.5]), 3.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_gram_or_q_is_undefined(bad):
    rng = np.random.default_rng(0)
    G, q = _random_psd(rng, 3), _random_q(rng, 3)
    G_bad = G.copy()
    G_bad[1, 2] = bad
    with pytest.raises(UndefinedUpdate, match="non-finite"):
        balance_mixture(G_bad, q, 3.0)
    q_bad = q.copy()
    q_bad[0] = bad
    with pytest.raises(UndefinedUpdate, match="non-finite"):
        balance_mixture(G, q_bad, 3.0)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_huge_gram_entries_do_not_overflow_to_nan():
    # <g, g> of float64 vectors near 1e160 overflows to inf: must be refused, never NaN.
    sums = np.full((2, 4), 1e160)
    with pytest.raises(UndefinedUpdate):
        balance_mixture(gram_matrix(sums, np.array([1, 1])), np.array([0.5, 0.5]), 3.0)


def test_undefined_update_is_a_value_error():
    assert issubclass(UndefinedUpdate, ValueError)


# ---------------------------------------------------------------- RnB strategy


M, D = 3, 40


def _ctx(m=M, q=None, total_steps=40, steps_per_round=10):
    q = np.full(m, 1 / m) if q is None else np.asarray(q, dtype=np.float64)
    return RunContext(
        domains=tuple(f"d{i}" for i in range(m)),
        train_sizes=np.arange(10, 10 + m, dtype=np.int64),
        eval_proportions=q,
        total_steps=total_steps,
        steps_per_round=steps_per_round,
        seed=0,
    )


def _feedback(round_index, mixture, sums, counts, step=None):
    counts = np.asarray(counts, dtype=np.int64)
    return RoundFeedback(
        round_index=round_index,
        step=10 * (round_index + 1) if step is None else step,
        mixture=mixture,
        counts=counts,
        domain_gradients=DomainGradients(sums=np.asarray(sums), counts=counts),
    )


def test_rnb_declares_it_needs_domain_gradients_only():
    assert RnB().signals == frozenset({Signal.DOMAIN_GRADIENTS})
    assert RnB(gram_estimator="unbiased").signals == frozenset({Signal.DOMAIN_GRADIENTS, Signal.DOMAIN_GRADIENT_HALVES})
    assert RnB().get_params() == {"lam": 3.0, "partial_update": True, "gram_estimator": "paper",
                                  "gram_every_round": False}


def test_rnb_start_returns_uniform():
    s = RnB(lam=2.0)
    p0 = s.start(_ctx(q=[0.2, 0.3, 0.5]))
    assert isinstance(p0, Mixture)
    assert p0 == Mixture.uniform(M)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lam", [0.5, 3.0])
def test_rnb_update_is_balance_of_gram_and_charges_only_gq(seed, lam):
    rng = np.random.default_rng(seed)
    q = _random_q(rng, M)
    meter = Meter()
    probe = RunProbe(meter)
    s = RnB(lam=lam)
    rounds = 4
    p = s.start(_ctx(q=q, total_steps=rounds * 10, steps_per_round=10))
    for r in range(rounds - 1):   # T − 1 updates: none after the last round
        sums = rng.normal(size=(M, D)).astype(np.float32)
        counts = rng.integers(1, 20, size=M)
        p_next = s.update(_feedback(r, p, sums, counts, step=(r + 1) * 10), probe)

        # The mixture is the Gram path's (the paper's formula as written) to float rounding.
        expected = balance_mixture(gram_matrix(sums, counts), q, lam)
        assert isinstance(p_next, Mixture)
        assert len(p_next) == M
        np.testing.assert_allclose(p_next.weights, expected, rtol=1e-12, atol=1e-15)
        p = p_next

        # Exactly 4·m·D FLOPs per update under ("strategy", "gq"); the Gram is only built at the
        # last update, for the report, and metered as reporting.
        assert meter.flops[("strategy", "gq")] == (r + 1) * 4 * M * D == (r + 1) * balance_flops(M, D)
        last = r == rounds - 2
        assert set(meter.flops) == {("strategy", "gq")} | ({("report", "gram")} if last else set())
        if last:
            np.testing.assert_allclose(s.last_gram_, gram_matrix(sums, counts))
            assert meter.flops[("report", "gram")] == gram_flops(M, D) == 2 * M * M * D
        else:
            assert s.last_gram_ is None
    report = meter.report()
    assert report.paper_flops == 3 * 4 * M * D
    assert report.overhead_flops == 3 * 4 * M * D   # the report's Gram is not overhead


def test_rnb_builds_the_gram_every_round_when_asked():
    rng = np.random.default_rng(3)
    meter = Meter()
    s = RnB(gram_every_round=True)
    p = s.start(_ctx(q=_random_q(rng, M), total_steps=100, steps_per_round=10))
    sums, counts = rng.normal(size=(M, D)), rng.integers(1, 20, size=M)
    s.update(_feedback(0, p, sums, counts, step=10), RunProbe(meter))
    np.testing.assert_allclose(s.last_gram_, gram_matrix(sums, counts))
    assert meter.flops[("report", "gram")] == gram_flops(M, D)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("m,dim", [(2, 3), (62, 500), (200, 64)])
def test_balance_scores_equal_gram_times_q(seed, m, dim):
    rng = np.random.default_rng(seed)
    sums, counts, q = rng.normal(size=(m, dim)).astype(np.float32), rng.integers(1, 50, size=m), _random_q(rng, m)
    np.testing.assert_allclose(balance_scores(sums, counts, q), gram_matrix(sums, counts) @ q, rtol=1e-12)
    with pytest.raises(UndefinedUpdate, match="drew no examples"):
        balance_scores(sums, np.where(np.arange(m) == 0, 0, counts), q)


def test_rnb_overwrites_p_each_round():
    # The update depends on this round's gradients only, not on the previous p.
    rng = np.random.default_rng(5)
    sums = rng.normal(size=(M, D))
    counts = np.array([3, 4, 5])
    a, b = RnB(lam=3.0), RnB(lam=3.0)
    a.start(_ctx())
    b.start(_ctx())
    a.update(_feedback(0, Mixture.uniform(M), rng.normal(size=(M, D)), counts), RunProbe(Meter()))
    pa = a.update(_feedback(1, a.mixture_, sums, counts), RunProbe(Meter()))
    pb = b.update(_feedback(0, b.mixture_, sums, counts), RunProbe(Meter()))
    assert pa == pb


def _undefined_rounds():
    rng = np.random.default_rng(3)
    return {
        "zero-count": (rng.normal(size=(M, D)), [4, 0, 6]),
        "zero-gradients": (np.zeros((M, D)), [4, 5, 6]),
        "nan-gradients": (np.full((M, D), np.nan), [4, 5, 6]),
        "inf-gradients": (np.full((M, D), np.inf), [4, 5, 6]),
    }


@pytest.mark.parametrize("case", sorted(_undefined_rounds()))
def test_rnb_keeps_previous_mixture_when_update_is_undefined(case, caplog):
    rng = np.random.default_rng(9)
    meter = Meter()
    probe = RunProbe(meter)
    s = RnB(lam=3.0, partial_update=False)   # the paper's literal reading for a domain not drawn
    p = s.start(_ctx(q=[0.2, 0.3, 0.5]))

    # Right after start: the previous mixture is p_0.
    sums, counts = _undefined_rounds()[case]
    with caplog.at_level(logging.WARNING, logger="mixbench.algorithms.rnb"):
        kept = s.update(_feedback(0, p, sums, counts), probe)
    assert kept == p
    assert np.all(np.isfinite(kept.weights))
    assert any(
        r.levelno == logging.WARNING and "round 0" in r.getMessage() and "previous mixture" in r.getMessage()
        for r in caplog.records
    ), caplog.text
    caplog.clear()

    # After a defined round: the previous mixture is that round's (not uniform).
    good = s.update(_feedback(1, kept, rng.normal(size=(M, D)), [5, 5, 5]), probe)
    assert good != Mixture.uniform(M)
    with caplog.at_level(logging.WARNING, logger="mixbench.algorithms.rnb"):
        kept = s.update(_feedback(2, good, sums, counts), probe)
    assert kept == good
    assert np.all(np.isfinite(kept.weights))
    assert [r for r in caplog.records if r.levelno == logging.WARNING and "round 2" in r.getMessage()]


def test_rnb_zero_count_warning_names_the_domain(caplog):
    s = RnB(partial_update=False)
    p = s.start(_ctx())
    with caplog.at_level(logging.WARNING, logger="mixbench.algorithms.rnb"):
        s.update(_feedback(4, p, np.ones((M, D)), [3, 0, 2]), RunProbe(Meter()))
    assert "1 domain(s) drew no examples this round (1)" in caplog.text


def test_rnb_partial_update_keeps_an_undrawn_domains_mass_and_balances_the_rest():
    rng = np.random.default_rng(11)
    m, q = 5, np.array([0.1, 0.2, 0.3, 0.25, 0.15])
    s = RnB(lam=3.0)
    s.start(_ctx(m=m, q=q))
    # A first full round moves p away from uniform.
    p1 = s.update(_feedback(0, Mixture.uniform(m), rng.normal(size=(m, D)), [3, 4, 5, 2, 6]), RunProbe(Meter()))
    sums, counts = rng.normal(size=(m, D)), np.array([4, 0, 3, 0, 5])
    meter = Meter()
    p2 = s.update(_feedback(1, p1, sums, counts), RunProbe(meter)).weights
    undrawn, drawn = [1, 3], [0, 2, 4]
    np.testing.assert_array_equal(p2[undrawn], p1.weights[undrawn])       # their mass kept exactly
    free = 1 - p1.weights[undrawn].sum()
    expected = balance_mixture(gram_matrix(sums[drawn], counts[drawn]), q[drawn] / q[drawn].sum(), 3.0)
    np.testing.assert_allclose(p2[drawn], free * expected, rtol=1e-12)     # Balance over the drawn ones
    assert meter.flops[("strategy", "gq")] == balance_flops(3, D)
    assert s.report_extras()["updates"] == {"full": 1, "partial": 1, "kept": 0}


def test_rnb_partial_update_needs_a_drawn_domain_with_eval_weight(caplog):
    s = RnB()
    p = s.start(_ctx(q=[0.0, 0.5, 0.5]))
    with caplog.at_level(logging.WARNING, logger="mixbench.algorithms.rnb"):
        kept = s.update(_feedback(0, p, np.ones((M, D)), [3, 0, 0]), RunProbe(Meter()))
    assert kept == p
    assert "no domain with eval weight drew an example" in caplog.text
    assert s.report_extras()["updates"] == {"full": 0, "partial": 0, "kept": 1}


def test_rnb_does_not_charge_a_gram_it_did_not_compute():
    meter = Meter()
    s = RnB(partial_update=False)
    p = s.start(_ctx())
    s.update(_feedback(0, p, np.ones((M, D)), [3, 0, 2]), RunProbe(meter))
    assert meter.flops.get(("strategy", "gram"), 0.0) == 0.0


@pytest.mark.parametrize("lam", [0, 0.0, -1.0, -1e-12, float("nan"), float("inf"), float("-inf"), True, "3"])
def test_rnb_check_params_refuses_bad_lambda(lam):
    with pytest.raises(ValueError, match="lam"):
        RnB(lam=lam).check_params()
    with pytest.raises(ValueError):
        RnB(lam=lam).start(_ctx())


@pytest.mark.parametrize("lam", [1e-9, 0.5, 3, 3.0, 1e4, np.float64(2.0), np.float32(3.0)])
def test_rnb_check_params_accepts_positive_finite_lambda(lam):
    RnB(lam=lam).check_params()


def test_rnb_state_dict_round_trip_resumes_exactly():
    rng = np.random.default_rng(1)
    rounds = [(rng.normal(size=(M, D)), rng.integers(1, 9, size=M)) for _ in range(3)]
    a = RnB(lam=3.0)
    p = a.start(_ctx(q=[0.1, 0.3, 0.6]))
    p = a.update(_feedback(0, p, *rounds[0]), RunProbe(Meter()))
    b = RnB(lam=3.0)
    b.load_state_dict(a.state_dict())
    for r in (1, 2):
        pa = a.update(_feedback(r, p, *rounds[r]), RunProbe(Meter()))
        pb = b.update(_feedback(r, p, *rounds[r]), RunProbe(Meter()))
        assert pa == pb
        p = pa


@pytest.mark.parametrize("lam", [0.0, -1.0, float("nan"), float("inf")])
def test_balance_mixture_refuses_a_bad_lambda(lam):
    with pytest.raises(ValueError, match="lam"):
        balance_mixture(np.eye(3), np.full(3, 1 / 3), lam)
