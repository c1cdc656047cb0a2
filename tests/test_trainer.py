"""The shared trainer through the Python API on the synthetic task (seconds on a CPU)."""

import pytest
from mixbench.algorithms.rnb import RnB
from mixbench.algorithms.stratified import Stratified
from mixbench.tasks.synthetic import Synthetic

from mixbench import MixingStrategy, Mixture
from mixbench.engine.callbacks import TrainCallback
from mixbench.engine.trainer import train


@pytest.fixture(scope="module")
def task():
    return Synthetic()


@pytest.fixture(scope="module")
def data(task):
    return task.load()


def config(task, **overrides):
    return task.budget.override(**{"steps": 30, "steps_per_round": 10, **overrides})


def test_same_seed_gives_identical_runs(task, data):
    a = train(data, RnB(), config(task, seed=1), progress=False)
    b = train(data, RnB(), config(task, seed=1), progress=False)
    assert a.train_losses == b.train_losses
    assert a.final_eval_losses == b.final_eval_losses
    assert [r.mixture for r in a.rounds] == [r.mixture for r in b.rounds]
    c = train(data, RnB(), config(task, seed=2), progress=False)
    assert c.train_losses != a.train_losses


def test_eval_loss_falls_and_rounds_are_recorded(task, data):
    h = train(data, RnB(), config(task), progress=False)
    assert h.final_mean_eval_loss < h.initial_mean_eval_loss - 1.0
    assert [r.step for r in h.rounds] == [10, 20, 30]
    assert all(sum(r.counts) == 10 * task.budget.batch_size for r in h.rounds)
    assert h.rounds[0].mixture == Mixture.uniform(len(data.domains)).tolist()   # p_0 is uniform
    assert h.rounds[1].mixture != h.rounds[0].mixture                           # then balanced


def test_only_requested_signals_are_computed(task, data):
    plain = train(data, Stratified(), config(task), progress=False).meter.report()
    assert plain.overhead_flops == 0.0
    assert not any(k.startswith("tap/") for k in plain.flops_by_label)
    tapped = train(data, RnB(), config(task), progress=False).meter.report()
    assert tapped.flops_by_label["tap/accumulate"] > 0
    # two updates over 4 domains of a V×h head: G q as M (Mᵀ q), 4·m·V·h each
    head = 257 * task.budget.n_embd
    assert tapped.flops_by_label["strategy/gq"] == 2 * (4 * 4 * head)


def test_last_round_may_be_short(task, data):
    h = train(data, RnB(), config(task, steps=25), progress=False)
    assert [r.step for r in h.rounds] == [10, 20, 25]


class _StopAfter(MixingStrategy):
    """Uniform, but raises `error` at the end of round `at` (simulates Ctrl-C or a crash)."""

    def __init__(self, *, at: int = 1, error: str = "KeyboardInterrupt"):
        self.at = at
        self.error = error

    def start(self, ctx):
        self.m_ = ctx.num_domains
        return Mixture.uniform(self.m_)

    def update(self, feedback, probe):
        if feedback.round_index == self.at:
            raise {"KeyboardInterrupt": KeyboardInterrupt, "RuntimeError": RuntimeError}[self.error]("stop")
        return Mixture.uniform(self.m_)


def test_evaluation_groups_rows_by_any_labelling():
    import numpy as np

    from mixbench.workloads import Evaluation

    evaluation = Evaluation(row_loss=np.array([2.0, 6.0, 3.0, 0.0]), row_weight=np.array([1.0, 3.0, 1.0, 0.0]),
                            domain_ids=np.array([0, 0, 1, 2]), num_domains=3)
    np.testing.assert_allclose(evaluation.losses[:2], [8.0 / 4, 3.0])     # token-weighted per domain
    assert np.isnan(evaluation.losses[2])                                  # no scored tokens: no loss
    np.testing.assert_allclose(evaluation.grouped(np.array([1, 0, 1, 0]), 2), [6.0 / 3, 5.0 / 2])


class _Recorder(TrainCallback):
    def __init__(self):
        self.steps, self.rounds, self.closed = [], [], 0

    def on_step(self, result):
        self.steps.append(result.step)

    def on_round(self, record):
        self.rounds.append(record.step)

    def close(self):
        self.closed += 1


def test_callbacks_see_every_step_and_round_and_are_closed_however_the_run_ends(task, data):
    recorder = _Recorder()
    h = train(data, RnB(), config(task, steps=25), callbacks=[recorder], progress=False)
    assert recorder.steps == list(range(1, 26)) and recorder.rounds == [r.step for r in h.rounds] == [10, 20, 25]
    assert recorder.closed == 1
    crashed = _Recorder()
    with pytest.raises(RuntimeError, match="stop"):
        train(data, _StopAfter(at=0, error="RuntimeError"), config(task), callbacks=[crashed], progress=False)
    assert crashed.steps == list(range(1, 11)) and crashed.rounds == [10] and crashed.closed == 1
