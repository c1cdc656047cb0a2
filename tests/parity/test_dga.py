"""Not a parity test: mixbench's dga against a second transcription of the same recollection of
DGA's update (Fan, Grangier, Ablin 2024, arXiv 2410.02498v1, Alg. 1 and its EMA variant) that
algorithms/dga.py was written from. The authors published no code, and the paper's body could not
be read here (docs/baselines.md, DGA's caveat), so there is nothing independent to hold the code
to: this test catches a change to the rule as recalled (the sign, the normalisation, the EMA's
form), not an error in the recollection itself. If the paper is read and differs, both sides here
are wrong together.

Both are driven by the same scripted inputs: two LinearProbe instances with one seed, one answering
the strategy (through the contract, trained between updates as the trainer would), one answering
the transcription. The mixtures must agree to 1e-10 after every round, with the EMA on and off.
"""

import numpy as np
import pytest
from mixbench.algorithms.dga import DGA, dga_weights

from mixbench.mixture import Mixture
from mixbench.strategy import RoundFeedback, RunContext
from tests.parity.scripted_probe import LinearProbe

STEPS_PER_ROUND = 5


def reference_dga_update(alpha: np.ndarray, probe: LinearProbe, eta: float, ema: float) -> np.ndarray:
    """DGA's weight update, transcribed from the paper (arXiv 2410.02498v1, Alg. 1; the EMA from its
    stabilised variant), with the paper's names.

    Alg. 1: sample a batch from every generic domain, x_i ~ D_i, and one from the specific set,
    y ~ D_spe; a_i = ⟨∇ℓ(θ, x_i), ∇ℓ(θ, y)⟩; mirror-descent step on the outer loss, whose gradient in
    α_i is −a_i: α̂ = α ⊙ exp(η·a) / ‖α ⊙ exp(η·a)‖₁. EMA variant: α ← (1 − β)·α + β·α̂, and the next
    batches are drawn from α. mixbench's `ema` is 1 − β (the share of the old weights kept).
    As recalled, not read: the paper's body (Alg. 1, the EMA paragraph, the appendix) could not be
    reached, so the sign, normalisation and EMA form here are unverified; see the caveat in
    algorithms/dga.py. Only the setting (online, simplex weights, bilevel, optional EMA) is
    confirmed by the abstract, third-party summaries and the ICLR reviews.
    """
    specific = probe.gradient(None)
    a = np.array([probe.gradient(i) @ specific for i in range(len(alpha))])
    tilted = alpha * np.exp(eta * a)
    alpha_hat = tilted / tilted.sum()
    beta = 1.0 - ema
    return (1.0 - beta) * alpha + beta * alpha_hat


def _context(m: int, rounds: int) -> RunContext:
    return RunContext(domains=tuple(f"d{i}" for i in range(m)), train_sizes=np.full(m, 100),
                      eval_proportions=np.full(m, 1.0 / m), total_steps=rounds * STEPS_PER_ROUND,
                      steps_per_round=STEPS_PER_ROUND, seed=0)


@pytest.mark.parametrize("m,eta,ema", [
    (4, 1.0, 0.9),     # the defaults: DGA with EMA
    (4, 1.0, 0.0),     # plain DGA, no EMA
    (3, 0.3, 0.5),
    (6, 0.05, 0.0),
])
def test_dga_matches_the_recollection_it_was_written_from(m, eta, ema):
    rounds = 6
    strategy = DGA(eta=eta, ema=ema)
    ours_probe, theirs_probe = LinearProbe(m, seed=7), LinearProbe(m, seed=7)

    mixture = strategy.start(_context(m, rounds))
    mixture = strategy.prepare(ours_probe) or mixture
    alpha = np.full(m, 1.0 / m)   # Alg. 1's α⁰: uniform
    np.testing.assert_allclose(mixture.weights, alpha, rtol=0, atol=1e-10)

    moved = False
    for r in range(rounds - 1):   # the trainer updates after every round but the last
        ours_probe.train(mixture, STEPS_PER_ROUND)
        theirs_probe.train(Mixture(alpha), STEPS_PER_ROUND)
        # dga declares no signals: the round's feedback carries only what every strategy gets
        feedback = RoundFeedback(round_index=r, step=(r + 1) * STEPS_PER_ROUND, mixture=mixture,
                                 counts=np.full(m, STEPS_PER_ROUND * 8 // m))
        mixture = strategy.update(feedback, ours_probe)
        alpha = reference_dga_update(alpha, theirs_probe, eta, ema)
        np.testing.assert_allclose(mixture.weights, alpha, rtol=0, atol=1e-10, err_msg=f"round {r}")
        moved |= bool(np.abs(alpha - 1.0 / m).max() > 1e-3)

    assert moved, "the scripted alignments should move the weights, or the test proves nothing"
    gradient_calls = lambda probe: [c for c in probe.calls if c[0] == "gradient"]  # noqa: E731
    assert gradient_calls(ours_probe) == gradient_calls(theirs_probe), "m + 1 batch gradients per update"
    assert ours_probe.charged == {"alignment": 2.0 * m * 16 * (rounds - 1)}   # m inner products of length 16


def test_dga_one_update_by_hand():
    """One update, worked by hand, of the rule as recalled (arXiv 2410.02498v1 Alg. 1 and its EMA;
    unverified, see algorithms/dga.py): α = (1/2, 1/2), a = (ln 3, 0), η = 1.

    Mirror step: α ⊙ exp(η·a) = (3/2, 1/2), normalised α̂ = (3/4, 1/4).
    EMA with β = 0.1 (ema = 0.9): 0.9·(1/2, 1/2) + 0.1·(3/4, 1/4) = (0.525, 0.475).
    If Alg. 1 turns out to differ once read, these numbers are the ones to redo.
    """
    alpha, a = np.array([0.5, 0.5]), np.array([np.log(3.0), 0.0])
    np.testing.assert_allclose(dga_weights(alpha, a, eta=1.0, ema=0.0), [0.75, 0.25], rtol=0, atol=1e-12)
    np.testing.assert_allclose(dga_weights(alpha, a, eta=1.0, ema=0.9), [0.525, 0.475], rtol=0, atol=1e-12)
