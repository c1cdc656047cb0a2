"""Every registered strategy passes the conformance kit: parametrised over the registry, so a new
built-in or an installed plugin is checked without touching this file. And the kit itself fails
strategies that break the contract, each with its own message."""

import numpy as np
import pytest

from mixbench import MixingStrategy, Mixture, registry
from mixbench.testing import check_strategy, parametrize_with_checks


@parametrize_with_checks({name: registry.strategies.get(name) for name in registry.strategies.names()})
def test_strategy_conforms(subject, check):
    check(subject)


def test_registry_has_the_builtins():
    assert {"stratified", "static", "rnb"} <= set(registry.strategies.names())


# -- the kit fails what breaks the contract ------------------------------------------------------


class _UniformThenBroken(MixingStrategy):
    """Uniform at start; `update` returns whatever `broken(feedback)` makes of the round."""

    def __init__(self):
        pass

    def start(self, ctx):
        self.m_ = ctx.num_domains
        return Mixture.uniform(self.m_)

    def broken(self, feedback):
        raise NotImplementedError

    def update(self, feedback, probe):
        return self.broken(feedback)


def _nonfinite_round(feedback) -> bool:
    """The kit's "nonfinite" rounds: 3 examples per domain, NaN and inf in every signal."""
    return bool(np.all(np.asarray(feedback.counts) == 3))


def _check_fails(strategy_cls, match: str) -> str:
    with pytest.raises(AssertionError, match=match) as info:
        check_strategy(strategy_cls)
    return str(info.value)


def test_kit_reports_an_exception_the_strategy_raises():
    class Raises(_UniformThenBroken):
        """Builds its Mixture from NaN-tainted weights: Mixture's own validation raises."""

        def broken(self, feedback):
            w = np.asarray(feedback.counts, dtype=float) + 1.0
            if _nonfinite_round(feedback):
                w[0] = np.nan
            return Mixture(w / w.sum())

    message = _check_fails(Raises, "raised InvalidMixture")
    # The kit names the failing check and where in the run it happened, not just the exception.
    assert "nonfinite_feedback: update of round 0 (nonfinite feedback) raised InvalidMixture" in message
    assert "non-finite entries" in message   # Mixture's own message, passed on


def _unvalidated_mixture(weights) -> Mixture:
    """A Mixture that skipped validation: only the kit's own finiteness check can catch it."""
    mixture = object.__new__(Mixture)
    mixture._p = np.asarray(weights, dtype=np.float64)
    return mixture


def test_kit_rejects_a_mixture_with_nan_weights_that_skipped_validation():
    class LeaksNan(_UniformThenBroken):
        def broken(self, feedback):
            w = np.full(self.m_, 1.0 / self.m_)
            if _nonfinite_round(feedback):
                w[0] = np.nan
            return _unvalidated_mixture(w)

    message = _check_fails(LeaksNan, "non-finite weights")
    assert "nonfinite_feedback: update of round 0 (nonfinite feedback) returned non-finite weights" in message
    assert "raised" not in message   # nothing was raised: the kit's check caught it
    # The other checks (random and zero feedback) pass: only the NaN round is reported.
    assert message.count("\n  ") == 1


def test_kit_rejects_weights_that_are_not_a_mixture():
    class ReturnsArray(_UniformThenBroken):
        def broken(self, feedback):
            return np.full(self.m_, 1.0 / self.m_)

    message = _check_fails(ReturnsArray, "returned ndarray, not a Mixture")
    assert "valid_mixtures: update of round 0 (random feedback) returned ndarray, not a Mixture" in message


def test_kit_rejects_state_that_does_not_resume():
    class Forgetful(MixingStrategy):
        """Keeps its round counter in a private attribute that state_dict() does not save."""

        def __init__(self):
            pass

        def start(self, ctx):
            self._round = 0
            self.m_ = ctx.num_domains
            return Mixture.uniform(self.m_)

        def update(self, feedback, probe):
            self._round = getattr(self, "_round", 0) + 1
            w = [1.0 + (i == self._round % self.m_) for i in range(self.m_)]
            return Mixture([x / sum(w) for x in w])

    _check_fails(Forgetful, "state_dict_round_trip: a strategy resumed from state_dict")

