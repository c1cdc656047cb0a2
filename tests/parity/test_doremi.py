"""Parity: mixbench's DoReMi against a transcription of the authors' code, both driven by the same
scripted linear probe for several rounds; the mixtures must agree to 1e-10.

The transcription below is our own code following sangmichaelxie/doremi at
7cde52d1848737aa967ecbdb9e643cf334de160d (HEAD), line numbers as of the commits each file last
changed in: doremi/trainer.py @d8ed1fb5614dd11896e2934794e01d42942f2d48, doremi/train.py and
doremi/dataloader.py @a6bacfdcb1cce972c9b2a04257483e5b59c7e9a2. It works per token, as the
reference does, on the LinearProbe's token losses (each token of an example has its own noise, so
a clip per example instead of per token would not agree).
"""

from __future__ import annotations

import numpy as np
import pytest
from mixbench.algorithms.doremi import DoReMi

from mixbench import Mixture
from mixbench.strategy import RoundFeedback, RunContext
from tests.parity.scripted_probe import LinearProbe

M = 5
TOTAL_STEPS, STEPS_PER_ROUND = 40, 10
TRAIN_SIZES = np.array([120, 90, 60, 45, 30])


def make_context(seed: int) -> RunContext:
    return RunContext(domains=tuple(f"d{i}" for i in range(M)), train_sizes=TRAIN_SIZES,
                      eval_proportions=np.full(M, 1 / M), total_steps=TOTAL_STEPS,
                      steps_per_round=STEPS_PER_ROUND, seed=seed)


# -- ours, through the contract -------------------------------------------------------------------

def drive_strategy(strategy: DoReMi, probe: LinearProbe, ctx: RunContext) -> list[np.ndarray]:
    """start → prepare → (train a round, update) as the trainer does: no update after the last round."""
    mixture = strategy.start(ctx)
    mixture = strategy.prepare(probe) or mixture
    mixtures = [mixture.weights.copy()]
    for round_index in range(ctx.num_rounds):
        probe.train(mixture, ctx.steps_per_round)
        if round_index == ctx.num_rounds - 1:
            break
        feedback = RoundFeedback(round_index=round_index, step=(round_index + 1) * ctx.steps_per_round,
                                 mixture=mixture, counts=np.zeros(M, dtype=np.int64))   # DoReMi asks for no signal
        mixture = strategy.update(feedback, probe)
        mixtures.append(mixture.weights.copy())
    return mixtures


# -- theirs, transcribed ---------------------------------------------------------------------------

class ReferenceDoReMi:
    """The DoReMi trainer's domain-weight state and its two per-step rules (doremiv1)."""

    def __init__(self, proxy_config: np.ndarray, eta: float, eps: float, vocab_size: int):
        # train.py:269-274: α_0 = the proxy's domain config weights, normalised; the average starts
        # as α_0 with the update counter at 1; per-domain scores start at ln|V|.
        self.train_domain_weights = proxy_config / proxy_config.sum()
        self.avg_domain_weights = self.train_domain_weights.copy()
        self.perdomain_scores = np.full(len(proxy_config), np.log(vocab_size))
        self.update_counter = 1
        # trainer.py:148: the sampling weights the loss divides by (the proxy's config, unnormalised)
        self.sampling_weights = proxy_config
        self.eta, self.eps = eta, eps
        self.kept_scores = 0   # how often a domain absent from a batch kept its score (coverage)

    def write_weights(self, weights):   # trainer.py:157-160
        self.update_counter += 1
        self.train_domain_weights = weights
        self.avg_domain_weights = (self.avg_domain_weights * (self.update_counter - 1) + weights) / self.update_counter

    def update_domain_weights(self, scores, domain_ids):   # trainer.py:239-260 (token mask all ones here)
        perdomain_scores = []
        for domain_id in range(len(self.train_domain_weights)):
            domain_mask = domain_ids == domain_id
            if domain_mask.sum() > 0:
                perdomain_scores.append(np.clip(scores[domain_mask], 0, None).mean())
            else:
                perdomain_scores.append(self.perdomain_scores[domain_id])
                self.kept_scores += 1
        self.perdomain_scores = np.array(perdomain_scores)
        log_new = np.log(self.train_domain_weights) + self.eta * self.perdomain_scores
        log_new = log_new - np.log(np.exp(log_new - log_new.max()).sum()) - log_new.max()   # logsumexp
        new = (1 - self.eps) * np.exp(log_new) + self.eps / len(log_new)
        self.write_weights(new)

    def training_step(self, pertoken_loss, reference_pertoken_loss, token_domain_ids):
        """trainer.py:297-363: update α from this batch's excess losses, then the per-token weights
        of the step's loss with the updated α."""
        excess_loss = pertoken_loss - reference_pertoken_loss          # :303
        self.update_domain_weights(excess_loss, token_domain_ids)      # :328-334
        weights = self.train_domain_weights / self.sampling_weights   # :346-350
        weights = weights / weights.sum()
        curr_domain_weights = weights[token_domain_ids]                # :351-353
        normalizer = max(curr_domain_weights.sum(), 1e-10)             # :356-360 (one process)
        return curr_domain_weights / normalizer                        # :363: loss = Σ ℓ·w / normalizer


def drive_reference(probe: LinearProbe, ctx: RunContext, *, eta: float, eps: float, reference_steps: int,
                    proxy_steps: int, reference_config: np.ndarray) -> tuple[list[np.ndarray], ReferenceDoReMi]:
    """The three DoReMi runs on the same probe: reference (run_pile_baseline120M.sh), proxy
    (run_pile_doremi120M.sh, domain config uniform: configs/pile_uniform.json), then the main run
    on the proxy's average weights (train.py:348-362 → run_pile_main120M.sh:47)."""
    proxy_config = np.full(M, 1 / M)
    # dataloader.py:265-270: a run samples its domains by its config's weights, normalised
    with probe.branch():
        probe.train(Mixture(reference_config / reference_config.sum()), reference_steps)
        reference = probe.freeze()
    doremi = ReferenceDoReMi(proxy_config, eta, eps, vocab_size=257)

    def weigh(batch):
        # The batch's scored tokens, flattened (the reference's token mask).
        scored = np.arange(batch.token_loss.shape[1])[None, :] < batch.row_weight[:, None]
        token_domains = np.broadcast_to(batch.domains[:, None], scored.shape)[scored]
        token_weights = doremi.training_step(batch.token_loss[scored], batch.reference_token_loss[scored],
                                             token_domains)
        # Σ_tokens w·ℓ = Σ_x w_x·row_loss_x: every token of x has its domain's weight
        return token_weights[np.cumsum(batch.row_weight.astype(int)) - batch.row_weight.astype(int)]

    with probe.branch():
        probe.train(Mixture(proxy_config), proxy_steps, weigh=weigh, reference=reference)
    final = Mixture(doremi.avg_domain_weights / doremi.avg_domain_weights.sum())   # dataloader.py:267-268
    mixtures = [final.weights.copy()]
    for round_index in range(ctx.num_rounds):
        probe.train(final, ctx.steps_per_round)
        if round_index < ctx.num_rounds - 1:
            mixtures.append(final.weights.copy())   # the final run's mixture is fixed
    return mixtures, doremi


# -- the test --------------------------------------------------------------------------------------

CASES = {
    "published defaults": {},
    "stratified reference, short runs, other eta and smoothing": dict(
        reference_mixture="stratified", reference_steps=15, proxy_steps=25, eta=0.5, smoothing=0.05),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_doremi_matches_the_reference_code(case, seed):
    params = CASES[case]
    ctx = make_context(seed)
    ours_probe, theirs_probe = LinearProbe(M, seed=seed), LinearProbe(M, seed=seed)
    strategy = DoReMi(**params)
    ours = drive_strategy(strategy, ours_probe, ctx)
    baseline = np.ones(M) if params.get("reference_mixture") == "stratified" else TRAIN_SIZES.astype(float)
    theirs, reference = drive_reference(
        theirs_probe, ctx, eta=params.get("eta", 1.0), eps=params.get("smoothing", 1e-3),
        reference_steps=params.get("reference_steps") or TOTAL_STEPS,
        proxy_steps=params.get("proxy_steps") or TOTAL_STEPS, reference_config=baseline)

    assert len(ours) == len(theirs) == ctx.num_rounds
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=0, atol=1e-10)
    assert ours_probe.calls == theirs_probe.calls   # the same probe calls, in the same order
    # The proxy's last weights too, not only their average.
    np.testing.assert_allclose(strategy.weights_, reference.train_domain_weights, rtol=0, atol=1e-10)
    assert strategy.updates_ == reference.update_counter
    # The run exercised every branch of the rule: learned something, and kept an absent domain's score.
    assert not np.allclose(ours[0], np.full(M, 1 / M), atol=1e-3)
    assert reference.kept_scores > 0
