"""Every registered strategy passes the conformance kit: parametrised over the registry, so a new
built-in or an installed plugin is checked without touching this file. And the kit itself fails
strategies that break the contract, each with its own message."""

import functools
from dataclasses import dataclass

import numpy as np
import pytest

from mixbench import Capability, MixingStrategy, Mixture, Signal, registry
from mixbench.testing import STRATEGY_KIT, check_name, check_strategy, parametrize_with_checks


@parametrize_with_checks({name: registry.strategies.get(name) for name in registry.strategies.names()})
def test_strategy_conforms(subject, check):
    check(subject)


def test_registry_has_the_builtins():
    assert {"stratified", "static", "rnb"} <= set(registry.strategies.names())


# -- the kit fails what breaks the contract ------------------------------------------------------


class _UniformThenBroken(MixingStrategy):
    """Uniform at start; `update` returns whatever `broken(feedback)` makes of the round. Reads
    the train losses, to tell the kit's nonfinite rounds."""

    signals = frozenset({Signal.TRAIN_LOSSES})

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
    """The kit's "nonfinite" rounds: NaN and inf in every batch, so in the train losses of domains drawn."""
    drawn = np.asarray(feedback.counts) > 0
    return bool(not np.all(np.isfinite(feedback.train_losses[drawn])))


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



def _reported(message: str) -> dict[str, str]:
    """check name (with its variant, "name [variant]") → its message, from check_strategy's report."""
    lines = message.splitlines()
    assert lines[0] == "strategy failed conformance:"
    return dict(line.strip().split(": ", 1) for line in lines[1:])


# -- capabilities: the kit's probe serves only what a strategy declares ---------------------------


class _ProbeStepEachRound(MixingStrategy):
    """Takes one probe step on the round's mixture at every update; declares nothing."""

    def __init__(self):
        pass

    def start(self, ctx):
        return Mixture.uniform(ctx.num_domains)

    def update(self, feedback, probe):
        probe.train(feedback.mixture, 1)
        return feedback.mixture


def test_kit_fails_a_probe_step_the_strategy_did_not_declare():
    reported = _reported(_check_fails(_ProbeStepEachRound, "Capability.PROBE_STEPS"))
    assert reported["valid_mixtures"] == (
        "update of round 0 (random feedback) called probe.train outside a branch, which needs "
        "Capability.PROBE_STEPS: declare it in the strategy's `capabilities`")
    assert "probe_steps_within_budget" not in reported   # it declares none: that check does not apply


def test_kit_fails_an_undeclared_probe_call_even_when_the_strategy_catches_the_refusal():
    class Swallows(_ProbeStepEachRound):
        def update(self, feedback, probe):
            try:
                probe.eval_losses()
            except Exception:  # noqa: BLE001 - the point: the refusal is hidden from the kit
                pass
            return feedback.mixture

    reported = _reported(_check_fails(Swallows, "Signal.EVAL_LOSSES"))
    assert reported["zero_feedback"] == ("update of round 0 (zero feedback) called probe.eval_losses, which needs "
                                         "Signal.EVAL_LOSSES: declare it in the strategy's `signals`")


def test_a_declared_probe_step_is_served_and_checked_against_the_budget():
    class Declares(_ProbeStepEachRound):
        capabilities = frozenset({Capability.PROBE_STEPS})

    check_strategy(Declares)   # probe_steps_within_budget included

    class WaitsForSteps(Declares):
        """Asks for probe steps until it has three: forever, once the budget is spent."""

        def update(self, feedback, probe):
            taken = 0
            while taken < 3:
                taken += len(probe.train(feedback.mixture, 1))
            return feedback.mixture

    reported = _reported(_check_fails(WaitsForSteps, "probe_steps_within_budget"))
    assert "with probe.steps_left at 0" in reported["probe_steps_within_budget"]
    assert reported["probe_steps_within_budget"].startswith("update of round ")


# -- signals: the feedback is the driver's, from exactly what is declared --------------------------


class _ReadsHalves(MixingStrategy):
    """Checks in every update that the domain gradients come in two halves that add up."""

    signals = frozenset({Signal.DOMAIN_GRADIENTS, Signal.DOMAIN_GRADIENT_HALVES})

    def __init__(self):
        pass

    def start(self, ctx):
        return Mixture.uniform(ctx.num_domains)

    def update(self, feedback, probe):
        grads = feedback.domain_gradients
        m = len(feedback.counts)
        assert grads.half_sums.shape == (2, m, grads.sums.shape[1]) and grads.half_counts.shape == (2, m)
        assert np.array_equal(grads.half_counts.sum(0), feedback.counts)
        assert np.allclose(grads.half_sums.sum(0), grads.sums, equal_nan=True)
        return feedback.mixture


def test_a_strategy_declaring_gradient_halves_gets_half_sums():
    check_strategy(_ReadsHalves)

    class HalvesUndeclared(_ReadsHalves):
        signals = frozenset({Signal.DOMAIN_GRADIENTS})

    # Without the declaration the halves are not there (None): its update reads nothing.
    reported = _reported(_check_fails(HalvesUndeclared, "raised AttributeError"))
    assert reported["valid_mixtures"].startswith("update of round 0 (random feedback) raised AttributeError")


def test_the_unbiased_gram_passes_as_a_factory():
    from mixbench.algorithms.rnb import RnB

    check_strategy(functools.partial(RnB, gram_estimator="unbiased"))


# -- variants: a class is checked at its defaults and at every variant it declares -----------------


@dataclass(kw_only=True, eq=False)
class _Tempered(MixingStrategy):
    """Uniform; above temperature 5 its update forgets to build a Mixture."""

    variants = {"hot": {"temperature": 10.0}}

    temperature: float = 1.0

    def check_params(self):
        if not self.temperature > 0:
            raise ValueError(f"tempered: temperature must be positive, got {self.temperature}")

    def start(self, ctx):
        self.m_ = ctx.num_domains
        return Mixture.uniform(self.m_)

    def update(self, feedback, probe):
        w = np.full(self.m_, 1.0 / self.m_)
        return w if self.temperature > 5 else Mixture(w)


def test_check_strategy_checks_every_variant_and_a_factory_as_given():
    reported = _reported(_check_fails(_Tempered, r"\[hot\]"))
    assert reported["valid_mixtures [hot]"] == "update of round 0 (random feedback) returned ndarray, not a Mixture"
    assert all(name.endswith(" [hot]") for name in reported)   # at the defaults it conforms
    check_strategy(functools.partial(_Tempered, temperature=2.0))   # a factory: no variants of its own


def test_kit_reports_a_variant_that_does_not_construct_once():
    class Misdeclared(_Tempered):
        variants = {"typo": {"temprature": 2.0}, "frozen": {"temperature": -1.0}, "fine": {"temperature": 2.0}}

    reported = _reported(_check_fails(Misdeclared, "declared_variants"))
    assert set(reported) == {"declared_variants"}   # the bad variants' own checks are not run
    assert "variant 'typo': Misdeclared(**{'temprature': 2.0}) raised TypeError" in reported["declared_variants"]
    assert "variant 'frozen'" in reported["declared_variants"]
    assert "temperature must be positive" in reported["declared_variants"]


def _case_ids(subjects) -> dict[str, dict]:
    """test id → {mark name: its kwargs} of parametrize_with_checks(subjects)."""
    mark = parametrize_with_checks(subjects)
    return {param.id: {m.name: m.kwargs for m in param.marks} for param in mark.args[1]}


def test_parametrize_names_variants_and_skips_checks_that_do_not_apply():
    from mixbench.algorithms.rnb import RnB

    cases = _case_ids([RnB])
    names = [check_name(c) for c in STRATEGY_KIT.checks]
    labels = ["RnB", *(f"RnB[{v}]" for v in RnB.variants)]
    assert set(cases) == {f"{label}-{name}" for label in labels for name in names}
    assert not cases["RnB[unbiased]-domain_gradients_from_the_tap"]   # it reads gradients: checked
    assert "PROBE_STEPS" in cases["RnB-probe_steps_within_budget"]["skip"]["reason"]
    assert "skip" in cases["RnB[unbiased]-declared_variants"]        # checked once, at the defaults
    assert {i.split("-", 1)[0] for i in _case_ids([functools.partial(RnB, lam=1.0)])} == {"RnB"}


def test_the_registry_suite_shows_variants_in_its_ids():
    mark = parametrize_with_checks({name: registry.strategies.get(name) for name in registry.strategies.names()})
    ids = {param.id for param in mark.args[1]}
    assert {"rnb-valid_mixtures", "rnb[unbiased]-valid_mixtures", "rnb[whole-updates]-state_dict_round_trip"} <= ids
