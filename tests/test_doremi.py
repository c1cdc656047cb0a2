"""DoReMi: its rule on hand-made inputs, a real run of the synthetic task metered against the
overhead formula, and bad hyperparameters through the CLI. (Parity with the authors' code:
tests/parity/test_doremi.py.)"""

import numpy as np
import pytest
from mixbench.algorithms.doremi import DoReMi, doremi_weights, excess_scores, loss_weights
from mixbench.tasks.synthetic import Synthetic

from mixbench.engine.trainer import train
from mixbench.probe import BatchLosses
from mixbench.strategy import RunContext
from tests.parity.scripted_probe import LinearProbe

# -- the rule on hand-made inputs ------------------------------------------------------------------


def _batch(domains, row_loss, reference_loss, row_weight):
    return BatchLosses(domains=np.array(domains), row_loss=np.array(row_loss, dtype=float),
                       reference_loss=None if reference_loss is None else np.array(reference_loss, dtype=float),
                       row_weight=np.array(row_weight, dtype=float))


def test_excess_is_clipped_per_example_and_averaged_over_the_domains_tokens():
    batch = _batch(domains=[0, 0, 1, 1], row_loss=[10.0, 4.0, 6.0, np.nan], reference_loss=[6.0, 6.0, 3.0, 1.0],
                   row_weight=[4, 2, 3, 5])
    previous = np.array([9.0, 9.0, 9.0])
    # domain 0: (max(4, 0) + max(−2, 0)) / (4 + 2); domain 1: its NaN row is left out, 3 / 3;
    # domain 2 is not in the batch and keeps its score.
    np.testing.assert_allclose(excess_scores(batch, previous), [4 / 6, 1.0, 9.0])
    assert np.all(excess_scores(_batch([0, 1], [np.inf, np.nan], [np.inf, 1.0], [2, 0]), previous) == previous)
    assert excess_scores(_batch([0], [1.0], None, [2]), previous) is previous   # no reference: nothing learned


def test_weights_take_an_exponentiated_step_then_are_smoothed_to_uniform():
    alpha, scores = np.array([0.5, 0.25, 0.25]), np.array([1.0, 0.0, 0.5])
    tilted = alpha * np.exp(2.0 * scores)
    expected = 0.9 * tilted / tilted.sum() + 0.1 / 3
    np.testing.assert_allclose(doremi_weights(alpha, scores, eta=2.0, smoothing=0.1), expected)
    np.testing.assert_allclose(doremi_weights(alpha, np.zeros(3), eta=2.0, smoothing=0.0), alpha)


def test_loss_weights_give_the_alpha_weighted_token_mean():
    batch = _batch(domains=[0, 1, 1, 0], row_loss=[8.0, 3.0, 10.0, 1.0], reference_loss=None, row_weight=[2, 3, 5, 0])
    alpha = np.array([0.6, 0.4])
    w = loss_weights(alpha, np.array([0.5, 0.5]), batch)
    per_token = np.array([0.6, 0.4, 0.4, 0.6])
    np.testing.assert_allclose(w, np.where([1, 1, 1, 0], per_token / (0.6 * 2 + 0.4 * 3 + 0.4 * 5), 0.0))
    assert w @ batch.row_weight == pytest.approx(1.0)   # a weighted mean: the token weights sum to 1
    # Non-uniform sampling is divided out: a domain sampled twice as often weighs half per token.
    w_skewed = loss_weights(np.array([0.5, 0.5]), np.array([2 / 3, 1 / 3]), batch)
    assert w_skewed[0] / w_skewed[1] == pytest.approx(0.5)
    assert np.all(loss_weights(alpha, np.array([0.5, 0.5]), _batch([0, 1], [1, 1], None, [0, 0])) == 0)


def _context(m, total_steps=20, steps_per_round=5):
    return RunContext(domains=tuple(f"d{i}" for i in range(m)), train_sizes=np.arange(m, 0, -1) * 10,
                      eval_proportions=np.full(m, 1 / m), total_steps=total_steps, steps_per_round=steps_per_round,
                      seed=0)


def test_prepare_returns_the_average_of_every_alpha_including_the_first():
    strategy = DoReMi(reference_steps=3, proxy_steps=1)
    strategy.start(_context(4))
    p = strategy.prepare(LinearProbe(4, seed=0))
    # One proxy step: ᾱ = (α_0 + α_1) / 2 with α_0 uniform.
    np.testing.assert_allclose(p.weights, (np.full(4, 0.25) + strategy.weights_) / 2)
    assert strategy.updates_ == 2 and not np.allclose(strategy.weights_, 0.25)


def test_steps_default_to_the_runs_length_and_the_main_run_keeps_p():
    probe = LinearProbe(3, seed=1)
    strategy = DoReMi()
    strategy.start(_context(3, total_steps=12))
    p = strategy.prepare(probe)
    trained = [call for call in probe.calls if call[0] == "train"]
    assert [(call[2], call[3]) for call in trained] == [(12, False), (12, True)]   # reference, then proxy
    np.testing.assert_allclose(trained[0][1], [3 / 6, 2 / 6, 1 / 6])   # "static": by training sizes
    assert probe.budget == 10_000   # all in branches: none of the run's steps
    assert strategy.update(None, probe) is p


def test_one_domain_trains_nothing():
    probe = LinearProbe(1)
    strategy = DoReMi()
    assert strategy.start(_context(1)).weights.tolist() == [1.0]
    assert strategy.prepare(probe).weights.tolist() == [1.0] and probe.calls == []


# -- a real run, metered ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic():
    task = Synthetic()
    return task, task.load()


@pytest.fixture(scope="module")
def runs(synthetic):
    task, data = synthetic
    cfg = task.budget.override(steps=20, steps_per_round=10)
    out = {}
    for name, strategy in {"default": DoReMi(), "short": DoReMi(reference_steps=10, proxy_steps=5)}.items():
        history = train(data, strategy, cfg, progress=False)
        out[name] = (strategy, history, history.meter.report())
    return out


def test_overhead_is_the_reference_and_proxy_runs_as_the_formula_counts(runs, synthetic):
    task, _ = synthetic
    for name, (ref_steps, proxy_steps) in {"default": (20, 20), "short": (10, 5)}.items():
        strategy, history, report = runs[name]
        n, b = history.num_params, task.budget.batch_size * task.budget.seq_len
        assert report.flops_by_label["strategy/probe_train"] == (ref_steps + proxy_steps) * 6 * n * b
        assert report.flops_by_label["strategy/reference_forward"] == proxy_steps * 2 * n * b
        formula = strategy.paper_overhead_flops(history.shape)
        print(f"doremi {name}: measured {report.overhead_flops:.4g} FLOPs, formula {formula:.4g}, "
              f"{report.flops_pct:.1f}% of training")
        assert report.overhead_flops == pytest.approx(formula)
    # With the defaults: 14·N·D_t, i.e. 14/6 of the run's own training.
    assert runs["default"][2].flops_pct == pytest.approx(100 * 14 / 6)


def test_the_run_trains_on_p_0_throughout(runs):
    strategy, history, _ = runs["default"]
    assert len(history.train_losses) == 20   # the reference and proxy steps are not the run's
    mixtures = [r.mixture for r in history.rounds]
    assert all(np.array_equal(m, strategy.mixture_.weights) for m in mixtures)
    assert history.final_mixture == strategy.mixture_.tolist()
    assert not np.allclose(mixtures[0], 1 / len(mixtures[0]), atol=1e-3)   # the proxy learned something
    extras = strategy.report_extras()
    assert extras["proxy_updates"] == 20 and np.isclose(sum(extras["proxy_average_weights"]), 1.0)


# -- bad hyperparameters ---------------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--eta", "0"], "doremi: eta must be positive"),
    (["--smoothing", "1.5"], "doremi: smoothing must be in [0, 1]"),
    (["--reference-steps", "-1"], "doremi: reference-steps must be a non-negative integer"),
    (["--reference-mixture", "natural"], "doremi: reference-mixture must be one of static, stratified"),
    (["--initial-score", "nan"], "doremi: initial-score must be a finite number"),
])
def test_bad_hyperparameters_exit_2(run_cli, args, message):
    proc = run_cli("run", "--algo", "doremi", "--task", "synthetic", *args, "--no-mlflow", "--no-progress")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr


def test_bad_hyperparameters_are_refused_before_the_run():
    for params in (dict(eta=True), dict(proxy_steps=2.5), dict(smoothing=-0.1)):
        with pytest.raises(ValueError, match="^doremi: "):
            DoReMi(**params).check_params()
