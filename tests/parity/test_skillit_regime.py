"""Skill-It in the regime of mixbench's paper run on evals-id (m = 100, from scratch): why its
mixture concentrates there, pinned as properties of the authors' rule (docs/baselines_at_200_steps.md).

HazyResearch/aioli @ 910d5249ec55c0e1ea1a25b9a7588640306f31cf trainer/skillit_trainer.py:50
(p_0 ∝ exp(η·A·1): ones in place of losses) and :116-120 (p ∝ exp(η·A·Σ window losses)), the same
as HazyResearch/skill-it @ cfabec0 trainer/mw_trainer.py:82, 110 and 194-199. Nothing rescales
A·L by m, by the window length or by the size of the losses.
"""

import numpy as np
import pytest
from mixbench.algorithms.skillit import skillit_mixture, window_sum


def centred_log(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log(p).mean()


@pytest.mark.parametrize("window_losses", [[5.5], [5.5, 3.4], [5.5, 3.4, 3.2]])
def test_losses_in_place_of_the_prior_scale_the_log_odds(window_losses):
    """With losses equal across domains, the update's log-odds are round 0's times the window's
    summed loss: from scratch (losses ≈ 5.5, then ≈ 3.3) that is ×5.5, ×8.9, ×12.1 for rounds 1-3,
    the growth of the log-odds spread seen in the evals-id records (std 0.36 → 2.0 → 3.0 → 3.8)."""
    m, eta = 100, 0.2
    graph = np.random.default_rng(0).uniform(0.05, 0.3, size=(m, m))
    round0 = skillit_mixture(graph, np.ones(m), eta)
    losses = window_sum([np.full(m, loss) for loss in window_losses], m)
    later = skillit_mixture(graph, losses, eta)
    np.testing.assert_allclose(centred_log(later), sum(window_losses) * centred_log(round0), atol=1e-9)


def test_log_odds_spread_grows_with_the_number_of_domains():
    """(A·L)_i sums over all m columns: with graph entries of the same size, the spread of the
    exponent across rows grows with m (here about as √m for independent entries), so η = 0.2, set
    by the authors for 2-7 domains, is a much sharper temperature at m = 100."""
    eta, spreads = 0.2, {}
    for m in (4, 25, 100):
        graph = np.random.default_rng(m).uniform(0.05, 0.3, size=(m, m))
        spreads[m] = centred_log(skillit_mixture(graph, np.full(m, 5.5), eta)).std()
    assert spreads[4] < spreads[25] < spreads[100]
    assert spreads[100] / spreads[4] > 3
