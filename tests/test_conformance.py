"""Every registered strategy passes the conformance kit: parametrised over the registry, so a new
built-in or an installed plugin is checked without touching this file."""

import pytest

from mixbench import registry
from mixbench.testing.strategies import check_strategy, strategy_checks

CASES = [(name, check) for name in registry.strategies.names() for check in strategy_checks()]


@pytest.mark.parametrize(
    "name,check", CASES, ids=[f"{n}-{c.__name__.removeprefix('check_')}" for n, c in CASES]
)
def test_strategy_conforms(name, check):
    check(registry.strategies.get(name))


def test_registry_has_the_builtins():
    assert {"stratified", "static", "rnb"} <= set(registry.strategies.names())



def test_kit_rejects_a_strategy_that_emits_nan():
    import numpy as np

    from mixbench import MixingStrategy, Mixture

    class Broken(MixingStrategy):
        """Returns raw weights from the gradients; NaN feedback leaks through."""

        def __init__(self):
            pass

        def start(self, ctx):
            self.m_ = ctx.num_domains
            return Mixture.uniform(self.m_)

        def update(self, feedback, probe):
            w = np.abs(np.asarray(feedback.counts, dtype=float)) + 1.0
            w[0] = np.nan if feedback.counts.sum() == 3 * len(w) else w[0]
            return Mixture(w / w.sum())

    with pytest.raises(Exception, match="non-finite"):
        check_strategy(Broken)


def test_kit_rejects_state_that_does_not_resume():
    from mixbench import MixingStrategy, Mixture

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

    with pytest.raises(AssertionError, match="state_dict"):
        check_strategy(Forgetful)
