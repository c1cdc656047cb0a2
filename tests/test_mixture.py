"""Mixture: a validated, read-only probability vector over the run's domains."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixbench.errors import MixbenchError
from mixbench.mixture import SUM_TOLERANCE, InvalidMixture, Mixture


def test_invalid_mixture_is_a_value_error_and_a_mixbench_error():
    assert issubclass(InvalidMixture, ValueError)
    assert issubclass(InvalidMixture, MixbenchError)


@pytest.mark.parametrize(
    "weights",
    [[1.0], [0.5, 0.5], [0.2, 0.3, 0.5], [0.0, 1.0, 0.0], np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)],
)
def test_accepts_a_probability_vector(weights):
    p = Mixture(weights)
    expected = np.asarray(weights, dtype=np.float64)
    assert len(p) == len(expected)
    assert p.weights.dtype == np.float64
    np.testing.assert_allclose(p.weights, expected, rtol=0, atol=1e-7)
    assert p.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert p.tolist() == pytest.approx(expected.tolist(), abs=1e-7)


def test_accepts_matching_num_domains():
    p = Mixture([0.25, 0.25, 0.5], num_domains=3)
    assert len(p) == 3


@pytest.mark.parametrize(
    "weights, why",
    [
        ([0.5, float("nan"), 0.5], "non-finite"),
        ([float("nan")], "non-finite"),
        ([0.5, float("inf")], "non-finite"),
        ([float("-inf"), 1.0], "non-finite"),
        ([1.5, -0.5], "negative"),
        ([-1e-12, 1.0 + 1e-12], "negative"),
        ([0.5, 0.6], "sums to"),
        ([0.1, 0.1], "sums to"),
        ([0.0, 0.0], "sums to"),
        ([], "empty"),
    ],
)
def test_refuses_invalid_weights(weights, why):
    with pytest.raises(InvalidMixture, match=why):
        Mixture(weights)


def test_refuses_wrong_length_for_num_domains():
    with pytest.raises(InvalidMixture, match="3 domains"):
        Mixture([0.5, 0.5], num_domains=3)
    with pytest.raises(InvalidMixture):
        Mixture([0.25, 0.25, 0.25, 0.25], num_domains=3)


def test_refuses_empty_even_when_num_domains_is_zero():
    with pytest.raises(InvalidMixture):
        Mixture([], num_domains=0)


def test_refusal_is_catchable_as_value_error_and_mixbench_error():
    with pytest.raises(ValueError):
        Mixture([0.7, 0.7])
    with pytest.raises(MixbenchError):
        Mixture([0.7, 0.7])


def test_sum_tolerance_boundary():
    assert SUM_TOLERANCE == 1e-6
    # Within the tolerance: accepted and renormalised to sum 1.
    p = Mixture([0.5, 0.5 + 5e-7])
    assert p.weights.sum() == pytest.approx(1.0, abs=1e-15)
    p = Mixture([0.5, 0.5 - 5e-7])
    assert p.weights.sum() == pytest.approx(1.0, abs=1e-15)
    # Beyond it: refused, on both sides.
    with pytest.raises(InvalidMixture):
        Mixture([0.5, 0.5 + 2e-6])
    with pytest.raises(InvalidMixture):
        Mixture([0.5, 0.5 - 2e-6])


def test_float32_softmax_output_is_accepted():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=72).astype(np.float32)
    e = np.exp(logits - logits.max())
    p32 = e / e.sum()  # float32: sums to 1 only within ~1e-7
    p = Mixture(p32, num_domains=72)
    assert p.weights.sum() == pytest.approx(1.0, abs=1e-12)


def test_weights_are_read_only():
    p = Mixture([0.2, 0.8])
    w = p.weights
    assert not w.flags.writeable
    with pytest.raises(ValueError):
        w[0] = 0.9
    assert p.weights.tolist() == [0.2, 0.8]


def test_mixture_does_not_alias_the_input():
    src = np.array([0.2, 0.8])
    p = Mixture(src)
    src[0] = 0.9
    assert p.weights.tolist() == [0.2, 0.8]
    # np.asarray(mixture) gives a copy the caller may change freely.
    arr = np.asarray(p)
    arr[0] = 0.0
    assert p.weights.tolist() == [0.2, 0.8]


def test_no_attribute_can_be_added_or_replaced():
    p = Mixture([0.2, 0.8])
    with pytest.raises(AttributeError):
        p.extra = 1  # __slots__: nothing but _p


def test_equality_and_hash():
    a, b, c = Mixture([0.2, 0.8]), Mixture([0.2, 0.8]), Mixture([0.8, 0.2])
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert a != [0.2, 0.8]


@pytest.mark.parametrize("m", [1, 2, 3, 7, 72])
def test_uniform(m):
    p = Mixture.uniform(m)
    assert len(p) == m
    np.testing.assert_allclose(p.weights, np.full(m, 1.0 / m), rtol=0, atol=1e-15)
    assert p.entropy() == pytest.approx(math.log(m), abs=1e-12)


def test_uniform_over_zero_domains_is_refused_as_invalid_mixture():
    with pytest.raises(InvalidMixture):
        Mixture.uniform(0)


def test_proportional():
    p = Mixture.proportional([1, 3, 0, 4])
    np.testing.assert_allclose(p.weights, [0.125, 0.375, 0.0, 0.5], rtol=0, atol=1e-15)
    np.testing.assert_allclose(Mixture.proportional([5, 5, 5]).weights, Mixture.uniform(3).weights,
                               rtol=0, atol=1e-15)
    # Sizes may be numpy integers (domain counts) and need not be normalised.
    np.testing.assert_allclose(Mixture.proportional(np.array([10, 30])).weights, [0.25, 0.75], atol=1e-15)


@pytest.mark.parametrize("sizes", [[0, 0, 0], [0.0], []])
def test_proportional_refuses_sizes_summing_to_zero(sizes):
    with pytest.raises(InvalidMixture):
        Mixture.proportional(sizes)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf / inf
@pytest.mark.parametrize("sizes", [[2, -1], [1, float("nan")], [1, float("inf")]])
def test_proportional_refuses_non_sizes(sizes):
    with pytest.raises(InvalidMixture):
        Mixture.proportional(sizes)


def test_entropy():
    assert Mixture([1.0, 0.0, 0.0]).entropy() == 0.0
    p = Mixture([0.25, 0.75])
    assert p.entropy() == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), abs=1e-12)
