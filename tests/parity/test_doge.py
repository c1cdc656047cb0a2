"""Parity: DoGE through the strategy contract against a transcription of the reference's proxy run,
both driven by LinearProbes with the same seed, for several rounds.

The transcription follows Olivia-fsm/DoGE @ 1fb7f7bb60dd4f7044c5c11e1ec788284eacf87c, the path its
published config takes (config/doge.json: compute_pertoken_losses false, domain_update_per_iter
null, so src/trainer.py:1036-1040 → train_step_distributed → update_domain_weights_distributed),
with the reference's gradients taken as the probe's slices of one batch (probe.gradients: the
domains', then the eval set's), not those of the batch the proxy steps on (the deviation the
strategy's docstring states)."""

import math

import numpy as np
import pytest
from mixbench.algorithms.doge import DoGE

from mixbench import Mixture
from mixbench.strategy import RoundFeedback, RunContext
from tests.parity.scripted_probe import LinearProbe

M, TOTAL_STEPS, STEPS_PER_ROUND, SEED = 5, 40, 10, 3


class TracingProbe(LinearProbe):
    """A LinearProbe that also keeps the model x after every training call, so the parity covers
    the weighted proxy steps too (the α update itself never sees x's direction here)."""

    def train(self, mixture, steps, **how):
        losses = super().train(mixture, steps, **how)
        self.trace = [*getattr(self, "trace", []), self.x.copy()]
        return losses


# -- the reference, transcribed ---------------------------------------------------------------------

def reference_lr(step, num_training_steps, base_lr, lr_end, warmup_ratio, lr_start=1e-7):
    """LinearWarmupCosineLR._get_closed_form_lr (src/trainer.py:291-295; lr_start :275) at
    last_epoch = step: the update of step t reads get_last_lr() before the scheduler steps
    (:750). Warm-up steps: HF's get_warmup_steps, ceil(ratio · steps) (config: 500 of 10000)."""
    num_warmup_steps = math.ceil(num_training_steps * warmup_ratio)
    if step < num_warmup_steps:
        return lr_start + (base_lr - lr_start) * step / num_warmup_steps
    progress = (step - num_warmup_steps) / (num_training_steps - num_warmup_steps)
    return lr_end + (base_lr - lr_end) * (1 + math.cos(math.pi * progress)) / 2


def clip_grad_norm(grad, max_norm):
    """torch.nn.utils.clip_grad_norm_ on one gradient: scale by min(1, max_norm / (‖g‖ + 1e-6))."""
    total_norm = math.sqrt(float(np.sum(grad * grad)))
    return grad * min(max_norm / (total_norm + 1e-6), 1.0)


def reference_proxy_run(probe, m, max_steps, *, mu=0.01, dw_min=0.0, dw_max=5.0, reweight_eps=0.0,
                        max_grad_norm=5.0, learning_rate=5e-4, lr_end=1e-4, warmup_ratio=0.05):
    """The reference's proxy run; returns avg_dw / dw_update_steps, the weights it saves (:770).
    Defaults are config/doge.json's (:21, :27-32, :34)."""
    train_dw = np.full(m, 1.0 / m)        # :401 uniform over the training domains
    avg_dw = np.zeros(m)                  # :422
    dw_update_steps = 0
    with probe.branch():                  # the proxy is its own model; the final run starts afresh
        for step in range(max_steps):
            # :722-745: each domain's gradient, clipped at max_grad_norm (:733-734), the target
            # "mix" last (it is the last key of the slim_full-mix data dict, src/data/utils.py:102).
            rows = [clip_grad_norm(g, max_grad_norm) for g in probe.gradients([*range(m), None])]
            train_mat, tgt_mat = np.stack(rows[:m]), np.stack(rows[m:])       # :746-747
            scores_mat = train_mat @ tgt_mat.T                                # :748
            lr_t = reference_lr(step, max_steps, learning_rate, lr_end, warmup_ratio)
            scores = lr_t * scores_mat.sum(axis=-1)                           # :756 (target ≠ train)
            avg_norm = np.linalg.norm(train_mat, axis=-1).mean()              # :758
            scores = scores / (avg_norm + 1e-6)                               # :759
            scores = np.clip(scores, lr_t * dw_min, lr_t * dw_max)            # :760
            log_dw_new = np.log(train_dw) + scores / mu                       # :763
            dw_new = np.exp(log_dw_new - log_dw_new.max())
            dw_new = dw_new / dw_new.sum()                                    # :764 softmax
            dw_new = (1 - reweight_eps) * dw_new + reweight_eps / len(dw_new) # :765
            train_dw = dw_new                                                 # :766
            avg_dw = avg_dw + dw_new                                          # :767
            dw_update_steps += 1                                              # :768

            def step_weights(batch, dw=train_dw):
                # :769 steps on Σ_i dw_i·∇loss_i, loss_i the mean token loss of domain i's slice of
                # the batch (:687-691; GPT-2's CrossEntropyLoss(reduction='mean'), src/models.py:257);
                # a domain absent from the batch adds nothing (add_model_grad_ls, :227).
                weights = np.zeros(len(batch.domains))
                for d in range(m):
                    in_d = batch.domains == d
                    if in_d.any():
                        weights[in_d] = dw[d] / batch.row_weight[in_d].sum()
                return weights

            # Batches come from the dataloader's fixed uniform weights (src/dataloader.py:261, 316).
            probe.train(Mixture.uniform(m), 1, weigh=step_weights)
    return avg_dw / dw_update_steps


# -- both sides, driven alike -----------------------------------------------------------------------

def context():
    return RunContext(domains=tuple(f"d{i}" for i in range(M)), train_sizes=np.full(M, 100),
                      eval_proportions=np.full(M, 1.0 / M), total_steps=TOTAL_STEPS,
                      steps_per_round=STEPS_PER_ROUND, seed=0)


def run_strategy(strategy, probe):
    """start → prepare → (train a round, update) as the trainer does: no update after the last round."""
    ctx = context()
    mixture = strategy.start(ctx)
    mixture = strategy.prepare(probe) or mixture
    mixtures = [mixture.weights.copy()]
    for r in range(ctx.num_rounds):
        probe.train(mixture, ctx.steps_per_round)
        if r < ctx.num_rounds - 1:
            feedback = RoundFeedback(round_index=r, step=(r + 1) * ctx.steps_per_round, mixture=mixture,
                                     counts=np.zeros(M, dtype=np.int64))   # DoGE declares no signals
            mixture = strategy.update(feedback, probe)
            mixtures.append(mixture.weights.copy())
    return mixtures


def run_reference(probe, proxy_steps, **hyper):
    """The proxy run, then the final run on its average weights, fixed (the Aioli authors' re-run:
    scripts/full/doge/run_final.sh:11-12, --sample_rule mixture --proportions)."""
    ctx = context()
    p = reference_proxy_run(probe, M, proxy_steps, **hyper)
    mixtures = [p]
    for r in range(ctx.num_rounds):
        probe.train(Mixture(p), ctx.steps_per_round)
        if r < ctx.num_rounds - 1:
            mixtures.append(p)
    return mixtures


CASES = {
    # Defaults; gradients of 64 entries have norms near 8, so the clipping at 5 is active.
    "defaults": ({}, {}, 64),
    # Every knob away from its default; norms near 4 straddle the clip at 3.5.
    "knobs": ({"mu": 0.05, "dw_min": -1.0, "dw_max": 0.5, "reweight_eps": 0.1, "domain_grad_clip": 3.5,
               "score_lr": 1e-3, "score_lr_end": 0.0, "score_warmup": 0.2, "proxy_steps": 25},
              {"mu": 0.05, "dw_min": -1.0, "dw_max": 0.5, "reweight_eps": 0.1, "max_grad_norm": 3.5,
               "learning_rate": 1e-3, "lr_end": 0.0, "warmup_ratio": 0.2}, 16),
}


@pytest.mark.parametrize("ours,theirs,grad_dim", CASES.values(), ids=list(CASES))
def test_doge_matches_the_reference(ours, theirs, grad_dim):
    strategy_probe = TracingProbe(M, seed=SEED, grad_dim=grad_dim)
    reference_probe = TracingProbe(M, seed=SEED, grad_dim=grad_dim)
    got = run_strategy(DoGE(**ours), strategy_probe)
    want = run_reference(reference_probe, ours.get("proxy_steps", 0) or TOTAL_STEPS, **theirs)

    assert len(got) == len(want) == context().num_rounds
    for round_index, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10, err_msg=f"mixture after round {round_index}")
    # Not a trivial pass: the proxy moved the weights well away from uniform.
    assert np.ptp(got[0]) > 0.02, got[0]
    # The same calls in the same order (the strategy also charges its arithmetic), and the same
    # model after every training call: the weighted proxy steps agree too.
    assert [c for c in strategy_probe.calls if c[0] != "charge"] == reference_probe.calls
    assert len(strategy_probe.trace) == len(reference_probe.trace)
    for a, b in zip(strategy_probe.trace, reference_probe.trace):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
