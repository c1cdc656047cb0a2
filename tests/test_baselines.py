"""Skill-It, Aioli and DGA: their update rules on hand-made inputs, the metered probe, the
paper's App. D overhead formulas against the meter, and bad hyperparameters."""

import numpy as np
import pytest
import torch
from mixbench.algorithms.aioli import Aioli, demix, demix_flops, normalize_graph, probe_mixture
from mixbench.algorithms.dga import DGA, dga_weights
from mixbench.algorithms.doge import DoGE
from mixbench.algorithms.doremi import DoReMi
from mixbench.algorithms.rnb import RnB
from mixbench.algorithms.skillit import SkillIt, skillit_mixture, skills_graph, window_sum
from mixbench.algorithms.stratified import Stratified
from mixbench.tasks.synthetic import Synthetic

from mixbench import Mixture
from mixbench.engine.trainer import train

# -- update rules on hand-made inputs --------------------------------------------------------------


def test_skills_graph_is_the_relative_loss_drop():
    before = np.array([2.0, 4.0])
    after = np.array([[1.0, 4.0],     # training skill 0 halves skill 0's loss, leaves skill 1
                      [2.0, 3.0]])    # training skill 1 lowers skill 1's loss by a quarter
    np.testing.assert_allclose(skills_graph(before, after), [[0.5, 0.0], [0.0, 0.25]])
    np.testing.assert_allclose(skills_graph(before, after, normalize=False), [[1.0, 0.0], [0.0, 1.0]])
    assert np.all(np.isfinite(skills_graph(np.array([0.0, 1.0]), after)))


def test_skillit_mixture_sums_the_window_and_uses_the_graph():
    graph = np.array([[1.0, 0.0], [1.0, 1.0]])
    losses = [np.array([1.0, 2.0]), np.array([1.0, 0.0])]   # window sum: [2, 2]
    np.testing.assert_allclose(window_sum(losses, 2), [2.0, 2.0])
    p = skillit_mixture(graph, window_sum(losses, 2), eta=0.5)
    expected = np.exp([0.5 * 2, 0.5 * 4]) / np.exp([0.5 * 2, 0.5 * 4]).sum()
    np.testing.assert_allclose(p, expected)
    np.testing.assert_allclose(window_sum([np.array([np.nan, np.inf])], 2), [0.0, 0.0])
    np.testing.assert_allclose(skillit_mixture(graph, np.array([np.nan, np.inf]), 0.5), [0.5, 0.5])


def test_skillit_round_zero_uses_the_prior_and_the_window_lags_a_round():
    """p_0 ∝ exp(η·A·1); the update at a round's end sums the round-START losses (the previous
    round-end evaluations), so this round's evaluation first counts at the next update."""
    from mixbench.strategy import RoundFeedback, RunContext
    from tests.parity.scripted_probe import LinearProbe

    probe = LinearProbe(2, seed=0)
    strategy = SkillIt(eta=0.5, window=2)
    strategy.start(RunContext(domains=("a", "b"), train_sizes=np.array([5, 5]), eval_proportions=np.array([0.5, 0.5]),
                              total_steps=30, steps_per_round=10, seed=0))
    before = probe.eval_losses()
    p0 = strategy.prepare(probe).weights
    np.testing.assert_allclose(p0, skillit_mixture(strategy.graph_, np.ones(2), 0.5))
    ends = [np.array([3.0, 1.0]), np.array([1.0, 3.0])]
    feedback = [RoundFeedback(round_index=r, step=10 * (r + 1), mixture=Mixture(p0), counts=np.zeros(2, np.int64),
                              eval_losses=loss) for r, loss in enumerate(ends)]
    p1 = strategy.update(feedback[0], probe).weights
    np.testing.assert_allclose(p1, skillit_mixture(strategy.graph_, before, 0.5))
    p2 = strategy.update(feedback[1], probe).weights
    np.testing.assert_allclose(p2, skillit_mixture(strategy.graph_, before + ends[0], 0.5))


def test_aioli_graph_is_demixed_and_normalised():
    interactions = np.array([[0.3, -0.1, 0.0], [0.1, 0.2, 0.0], [0.0, 0.05, 0.4]])
    np.testing.assert_allclose(probe_mixture(3, 1, 0.5), [0.25, 0.5, 0.25])
    # Loss drops measured on the probe mixtures w_j mix A's columns; de-mixing undoes it.
    drops = np.stack([interactions @ probe_mixture(3, j, 0.5) for j in range(3)], axis=1)
    np.testing.assert_allclose(demix(drops, 0.5), interactions, atol=1e-12)
    np.testing.assert_allclose(demix(drops, 0.5, diagonal=True), np.diag(np.diag(drops) / 0.5))
    assert demix(drops, 1.0) is drops   # one-hot probes measure A itself
    # Normalised: shifted up to a minimum of 0, then scaled to sum to 1; all-equal gives zeros.
    shifted = interactions + 0.1
    np.testing.assert_allclose(normalize_graph(interactions), shifted / shifted.sum())
    np.testing.assert_allclose(normalize_graph(np.full((2, 2), -1.0)), np.zeros((2, 2)))


def test_dga_weights_follow_the_alignment():
    w = np.array([0.25, 0.25, 0.5])
    a = np.array([0.2, -0.2, 0.0])          # raw inner products: not rescaled to ±1
    step = w * np.exp(1.5 * a)
    step /= step.sum()
    np.testing.assert_allclose(dga_weights(w, a, eta=1.5), step)
    np.testing.assert_allclose(dga_weights(w, a, eta=1.5, ema=0.9), 0.9 * w + 0.1 * step)
    np.testing.assert_allclose(dga_weights(w, np.array([np.nan, 0.0, 0.0]), eta=1.0), w)


# -- the probe, metered --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic():
    task = Synthetic()
    return task, task.load()


def _cfg(task, **overrides):
    return task.budget.override(**{"steps": 30, "steps_per_round": 10, **overrides})


class ProbeRecorder(Stratified):
    """Uniform, but at the first update makes one probe call of each kind and records the meter."""

    def update(self, feedback, probe):
        if feedback.round_index == 0:
            meter = probe.meter
            self.seen_ = {}
            before = dict(meter.flops)
            probe.eval_losses()
            self.seen_["eval"] = _delta(before, meter.flops)
            before = dict(meter.flops)
            probe.gradient(0)
            self.seen_["gradient"] = _delta(before, meter.flops)
            state = probe.session.state
            weights = [p.detach().clone() for p in state.model.parameters()]
            step, before = state.step, dict(meter.flops)
            with probe.branch():
                probe.train(Mixture.uniform(len(self.mixture_)), 3)
            self.seen_["branch"] = _delta(before, meter.flops)
            self.seen_["restored"] = state.step == step and all(
                torch.equal(a, b) for a, b in zip(weights, state.model.parameters()))
            before = dict(meter.flops)
            self.seen_["budget_losses"] = len(probe.train(Mixture.uniform(len(self.mixture_)), 2))
            self.seen_["train"] = _delta(before, meter.flops)
        return self.mixture_


def _delta(before, after):
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def test_probe_calls_are_metered_and_attributed(synthetic):
    task, data = synthetic
    strategy = ProbeRecorder()
    history = train(data, strategy, _cfg(task), progress=False)
    n, b = history.num_params, task.budget.batch_size * task.budget.seq_len
    seen = strategy.seen_
    assert seen["eval"] == {("strategy", "probe_eval"): 2 * n * history.shape.eval_tokens}
    assert seen["gradient"] == {("strategy", "probe_gradient"): 6 * n * b}
    assert seen["branch"] == {("strategy", "probe_train"): 3 * 6 * n * b}
    assert seen["restored"], "a branch must leave the model and step counter as they were"
    # Outside a branch, probe training is the run's training: it counts against the budget.
    assert seen["budget_losses"] == 2 and seen["train"] == {("train", "step"): 2 * 6 * n * b}
    assert len(history.train_losses) == 30 and history.rounds[-1].step == 30


# -- overhead against the paper's App. D formulas ------------------------------------------------

@pytest.fixture(scope="module")
def runs(synthetic):
    task, data = synthetic
    out = {}
    for strategy in (Stratified(), RnB(), DGA(), SkillIt(), Aioli(), DoReMi(), DoGE()):
        history = train(data, strategy, _cfg(task), progress=False)
        out[type(strategy).__name__] = (strategy, history, history.meter.report())
    return out


def test_overhead_matches_the_paper_formulas(runs):
    for name, (strategy, history, report) in runs.items():
        formula = strategy.paper_overhead_flops(history.shape)
        print(f"{name:10s} measured {report.overhead_flops:.4g} FLOPs, App. D formula {formula:.4g}")
    s = runs["Stratified"]
    assert s[2].overhead_flops == 0 and s[0].paper_overhead_flops(s[1].shape) == 0
    shape = runs["SkillIt"][1].shape
    T, m = shape.rounds, shape.num_domains
    assert runs["SkillIt"][2].overhead_flops == pytest.approx(runs["SkillIt"][0].paper_overhead_flops(shape))
    # DGA updates after every round but the last (T − 1 of T); Aioli runs LearnParams in every round
    # (round 0's in prepare) with one evaluation before its sweep and a de-mixing solve:
    # differences explained in their docstrings, checked exactly here.
    dga, dga_h, dga_r = runs["DGA"]
    gradients = dga_r.flops_by_label["strategy/probe_gradient"]
    B, N = dga_h.shape.batch_tokens, dga_h.shape.num_params
    # R&B App. D.3, 6(1 + δ)·D_t·N + 6·T·(D_e + m)·N, with δ·D_t = T·m·B and D_e = B, less training.
    assert dga.paper_overhead_flops(dga_h.shape) == 6 * T * (m + 1) * B * N + T * m * N
    assert gradients == pytest.approx(6 * (T - 1) * (m + 1) * B * N)
    aioli, aioli_h, aioli_r = runs["Aioli"]
    evaluation = 2 * aioli_h.shape.eval_tokens * aioli_h.num_params
    expected = T * (aioli.lp_rounds * m + 1) * evaluation + T * demix_flops(m)
    assert aioli.paper_overhead_flops(aioli_h.shape) == T * m * evaluation
    assert aioli_r.overhead_flops == pytest.approx(expected)
    rnb, rnb_h, rnb_r = runs["RnB"]
    head = 257 * 32  # V × h of the synthetic task's model
    assert rnb_r.paper_flops == 4 * m * head * (T - 1)      # G q as M (Mᵀ q) at each of T − 1 updates
    assert rnb_r.flops_by_label["report/gram"] == 2 * m * m * head   # the report's Gram, last update only


def test_overhead_ordering_is_the_papers(runs):
    pct = {name: r.flops_pct for name, (_, _, r) in runs.items()}
    print("FLOP overhead %:", {k: round(v, 4) for k, v in pct.items()})
    assert pct["Stratified"] == 0 < pct["RnB"] < 0.1
    assert pct["RnB"] * 100 < pct["DGA"] < min(pct["SkillIt"], pct["Aioli"])


def test_overheads_are_ordered_as_the_formulas_predict(runs):
    """Every strategy's measured overhead ranks where its formula (App. D, or its own) puts it."""
    formula = {name: s.paper_overhead_flops(h.shape) for name, (s, h, _) in runs.items()}
    measured = {name: r.overhead_flops for name, (_, _, r) in runs.items()}
    for name in formula:
        print(f"{name:10s} formula {formula[name]:.3g} FLOPs, measured {measured[name]:.3g}")
    # Every pair the formulas tell apart (by more than 10 %) is measured in the same order.
    for a in formula:
        for b in formula:
            if formula[a] < 0.9 * formula[b]:
                assert measured[a] < measured[b], f"{a} should cost less than {b}"
    # The offline methods' proxies cost about as much as the run itself, twice over.
    assert 1.9 < runs["DoGE"][2].flops_pct / 100 < 2.1 and 2.2 < runs["DoReMi"][2].flops_pct / 100 < 2.4


def test_aioli_probe_steps_count_against_the_budget(runs):
    _, history, _ = runs["Aioli"]
    assert len(history.train_losses) == 30          # not 30 + probe steps
    assert sum(sum(r.counts) for r in history.rounds) == 30 * 8


# -- bad hyperparameters ---------------------------------------------------------------------------

@pytest.mark.parametrize("algo,args,message", [
    ("skillit", ["--eta", "0"], "eta must be positive"),
    ("skillit", ["--window", "0"], "window must be a positive integer"),
    ("skillit", ["--graph-fraction", "0"], "graph-fraction must be positive"),
    ("aioli", ["--eta", "-1"], "eta must be positive"),
    ("aioli", ["--lp-steps", "0"], "lp-steps must be a positive integer"),
    ("aioli", ["--one-hot-factor", "0.25"], "one-hot-factor must be above 1/m"),
    ("aioli", ["--ema", "1.5"], "ema must be in"),
    ("dga", ["--eta", "0"], "eta must be positive"),
    ("dga", ["--ema", "1"], "ema must be in"),
    ("skillit", ["--graph-fraction", "1e6"], "must be at most 10 × the run's"),
    ("doremi", ["--proxy-steps", "100000"], "proxy-steps (100000 steps) must be at most 10 × the run's"),
    ("doge", ["--proxy-steps", "100000"], "proxy-steps (100000 steps) must be at most 10 × the run's"),
])
def test_bad_hyperparameters_exit_2(run_cli, algo, args, message):
    proc = run_cli("run", "--algo", algo, "--task", "synthetic", *args, "--no-mlflow", "--no-progress")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr


@pytest.mark.slow
def test_baseline_runs_on_regrouped_domains(run_cli, tmp_path):
    proc = run_cli("run", "--algo", "dga", "--task", "synthetic", "--steps", "20", "--steps-per-round", "5",
                   "--domains", "regroup:3", "--embedder", "tfidf", "--no-mlflow", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "overhead by formula (R&B App. D" in proc.stdout


def test_probe_needs_a_run():
    from mixbench.engine.meter import Meter
    from mixbench.engine.probe import RunProbe

    probe = RunProbe(Meter())
    for call in (probe.eval_losses, lambda: probe.gradient(0), lambda: probe.train(Mixture.uniform(2), 1),
                 lambda: probe.steps_left):
        with pytest.raises(RuntimeError, match="not attached"):
            call()
    with pytest.raises(RuntimeError, match="not attached"), probe.branch():
        pass
    probe.charge("gram", 10.0)   # charging needs no run
    assert probe.meter.flops[("strategy", "gram")] == 10.0
