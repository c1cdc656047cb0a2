"""DoGE: its pieces on hand-made inputs, the proxy run through a scripted probe, a real run of the
synthetic task metered against the derived overhead formula, and bad hyperparameters."""

import numpy as np
import pytest
from mixbench.algorithms.doge import DoGE, alignment_flops, clip_norm, doge_scores, domain_mean_weights, reference_lr
from mixbench.tasks.synthetic import Synthetic

from mixbench.engine.trainer import train
from mixbench.probe import BatchLosses
from mixbench.strategy import RoundFeedback, RunContext, RunShape
from mixbench.workloads import build_workload
from tests.parity.scripted_probe import LinearProbe

# -- the pieces ---------------------------------------------------------------------------------------


def test_reference_lr_warms_up_from_1e7_then_decays_to_lr_end():
    lrs = [reference_lr(t, 100, 5e-4, 1e-4, 0.05) for t in range(100)]
    assert lrs[0] == 1e-7                                   # warm-up starts at the reference's lr_start
    assert lrs[5] == pytest.approx(5e-4)                    # ⌈0.05·100⌉ = 5 warm-up steps, then the peak
    assert 1e-4 < lrs[99] < 1.01e-4                          # cosine down to the end lr (reached at step 100)
    assert all(a < b for a, b in zip(lrs[:5], lrs[1:6])) and all(a >= b for a, b in zip(lrs[5:], lrs[6:]))
    assert reference_lr(0, 10, 5e-4, 1e-4, 0.0) == pytest.approx(5e-4)   # no warm-up: the peak at once


def test_clip_norm_scales_only_long_gradients():
    short = np.array([0.3, 0.4])
    np.testing.assert_array_equal(clip_norm(short, 5.0), short)
    np.testing.assert_allclose(np.linalg.norm(clip_norm(np.array([30.0, 40.0]), 5.0)), 5.0, rtol=1e-6)


def test_scores_are_scaled_alignments_clipped_to_the_lr_band():
    grads = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    target = np.array([3.0, 1.0])
    mean_norm = (1 + 2 + 1) / 3
    raw = 0.1 * np.array([3.0, 2.0, -3.0]) / (mean_norm + 1e-6)
    np.testing.assert_allclose(doge_scores(grads, target, 0.1, 0.0, 5.0), np.clip(raw, 0.0, 0.5))
    np.testing.assert_allclose(doge_scores(grads, target, 0.1, -1.0, 1.0), np.clip(raw, -0.1, 0.1))
    nan_target = np.array([np.nan, 1.0])
    np.testing.assert_array_equal(doge_scores(grads, nan_target, 0.1, 0.0, 5.0)[[0, 2]], [0.0, 0.0])


def test_step_weights_give_the_alpha_weighted_sum_of_domain_mean_losses():
    batch = BatchLosses(domains=np.array([0, 0, 2, 0]), row_loss=np.array([4.0, 6.0, 9.0, 2.0]),
                        row_weight=np.array([2.0, 3.0, 3.0, 1.0]))
    alpha = np.array([0.5, 0.3, 0.2])
    weights = domain_mean_weights(batch, alpha)
    # domain 0: 12 loss over 6 tokens, mean 2; domain 2: 9 over 3, mean 3; domain 1 absent.
    assert weights @ batch.row_loss == pytest.approx(0.5 * 2.0 + 0.2 * 3.0)
    assert np.all(weights >= 0) and np.all(np.isfinite(weights))


# -- the proxy run, through a scripted probe ---------------------------------------------------------

def _context(m=4, total_steps=30, steps_per_round=10):
    return RunContext(domains=tuple(f"d{i}" for i in range(m)), train_sizes=np.full(m, 50),
                      eval_proportions=np.full(m, 1 / m), total_steps=total_steps,
                      steps_per_round=steps_per_round, seed=0)


def test_proxy_run_is_a_branch_of_proxy_steps_and_the_mixture_stays_fixed():
    probe = LinearProbe(4, seed=1, grad_dim=32)
    strategy = DoGE(proxy_steps=7)
    strategy.start(_context())
    p0 = strategy.prepare(probe)
    kinds = [c[0] for c in probe.calls]
    assert kinds[0] == "branch" and kinds[-1] == "end_branch" and probe.x.sum() == 0   # undone
    assert kinds.count("gradients") == 7 and kinds.count("train") == 7
    assert [c[1] for c in probe.calls if c[0] == "gradients"][0] == (0, 1, 2, 3, None)   # target last
    assert probe.charged["alignment"] == 7 * alignment_flops(4, 32)
    assert not np.allclose(p0.weights, 0.25) and not np.allclose(p0.weights, strategy.alpha_)  # the mean α
    feedback = RoundFeedback(round_index=0, step=10, mixture=p0, counts=np.zeros(4, dtype=np.int64))
    assert strategy.update(feedback, probe) is p0
    assert strategy.report_extras()["proxy_last_weights"] == strategy.alpha_.tolist()


def test_the_domain_aligned_with_the_target_gains_weight():
    probe = LinearProbe(4, seed=2, grad_dim=32)
    probe.B[1] = probe.B[-1]                       # domain 1's gradient is the target's
    probe.B[[0, 2, 3]] = -0.1 * probe.B[-1]        # the others point away from it
    probe.C[:] = 0.0
    strategy = DoGE()
    strategy.start(_context())
    p0 = strategy.prepare(probe).weights
    assert p0.argmax() == 1 and p0[1] > 0.3 and np.allclose(p0[[0, 2, 3]], p0[0])


def test_proxy_steps_default_to_the_run_length():
    probe = LinearProbe(3, seed=0)
    strategy = DoGE()
    strategy.start(_context(m=3, total_steps=12, steps_per_round=4))
    strategy.prepare(probe)
    assert [c[0] for c in probe.calls].count("train") == 12


# -- a real run, metered -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic_run():
    task = Synthetic()
    strategy = DoGE()
    history = train(task.load(), strategy, task.budget.override(steps=20, steps_per_round=10), progress=False)
    return task, strategy, history, history.meter.report()


def test_overhead_matches_the_derived_formula(synthetic_run):
    task, strategy, history, report = synthetic_run
    n, b = history.num_params, task.budget.batch_size * task.budget.seq_len
    m, steps = history.shape.num_domains, 20     # the proxy is as long as the run
    by_label = report.flops_by_label
    assert by_label["strategy/probe_gradient"] == pytest.approx(steps * 6 * n * b)   # one batch, sliced
    assert by_label["strategy/probe_train"] == pytest.approx(steps * 6 * n * b)
    formula = strategy.paper_overhead_flops(history.shape)
    assert by_label["strategy/probe_gradient"] + by_label["strategy/probe_train"] == pytest.approx(formula)
    # Beside the formula the meter counts only the alignment arithmetic, over the whole gradient.
    dim = sum(p.numel() for p in build_workload("text", task.budget).model.parameters())   # D: every parameter
    assert by_label["strategy/alignment"] == pytest.approx(steps * alignment_flops(m, dim))
    assert report.overhead_flops == pytest.approx(formula + steps * alignment_flops(m, dim))
    # The proxy costs two batches per step of the run: 200 % overhead, and it is no training.
    assert report.flops_pct == pytest.approx(200, rel=0.01)
    assert len(history.train_losses) == 20 and history.rounds[-1].step == 20


def test_the_run_trains_on_the_proxy_average_throughout(synthetic_run):
    _, strategy, history, _ = synthetic_run
    p0 = strategy.mixture_.weights
    for mixture in [*(r.mixture for r in history.rounds), history.final_mixture]:
        np.testing.assert_allclose(mixture, p0, rtol=0, atol=1e-12)
    assert not np.allclose(p0, 1 / len(p0))


def test_the_formula_is_linear_in_the_proxy_length():
    shape = RunShape(num_params=1000, train_tokens=30 * 512, eval_tokens=0, batch_tokens=512, rounds=3, num_domains=4)
    assert DoGE().paper_overhead_flops(shape) == 12 * 30 * 512 * 1000   # 12·D_t·N
    assert DoGE(proxy_steps=10).paper_overhead_flops(shape) == DoGE().paper_overhead_flops(shape) / 3


# -- bad hyperparameters -------------------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--mu", "0"], "doge: mu must be positive"),
    (["--score-warmup", "1"], "doge: score-warmup must be in [0, 1)"),
    (["--proxy-steps", "-1"], "doge: proxy-steps must be a non-negative integer"),
    (["--dw-min", "6"], "doge: dw-min and dw-max must be finite with dw-min <= dw-max"),
])
def test_bad_hyperparameters_exit_2(run_cli, args, message):
    proc = run_cli("run", "--algo", "doge", "--task", "synthetic", *args, "--no-mlflow", "--no-progress")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
