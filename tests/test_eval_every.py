"""--eval-every R: reporting evaluations every R rounds and at the last; never skipped for a
strategy that reads eval losses."""

from __future__ import annotations

import math

import pytest
from mixbench.algorithms.rnb import RnB
from mixbench.algorithms.skillit import SkillIt
from mixbench.tasks.synthetic import Synthetic

from mixbench.engine.callbacks import TrainCallback
from mixbench.engine.history import RunHistory
from mixbench.engine.trainer import train


@pytest.fixture(scope="module")
def synthetic():
    task = Synthetic()
    return task, task.load()


def test_rounds_between_are_not_evaluated_and_the_last_always_is(synthetic):
    task, data = synthetic
    h = train(data, RnB(), task.budget.override(steps=40, steps_per_round=5, eval_every=3), progress=False)
    assert [r.evaluated for r in h.rounds] == [False, False, True, False, False, True, False, True]
    for r in h.rounds:
        assert math.isnan(r.mean_eval_loss) != r.evaluated
    assert h.final_mean_eval_loss == h.rounds[-1].mean_eval_loss
    # Evaluations cost what they did, only fewer of them: 3 round ends instead of 8.
    every = train(data, RnB(), task.budget.override(steps=40, steps_per_round=5), progress=False)
    assert h.meter.flops[("eval", "eval")] == every.meter.flops[("eval", "eval")] * 3 / 8
    assert h.meter.flops[("eval", "initial_eval")] == every.meter.flops[("eval", "initial_eval")]
    # Skipping evaluations changes nothing else: the same batches, losses and mixtures.
    assert h.train_losses == every.train_losses
    assert [r.mixture for r in h.rounds] == [r.mixture for r in every.rounds]


def test_a_strategy_that_reads_eval_losses_still_gets_them_every_round(synthetic):
    task, data = synthetic
    h = train(data, SkillIt(graph_fraction=0.25), task.budget.override(steps=20, steps_per_round=5, eval_every=4),
              progress=False)
    assert all(r.evaluated for r in h.rounds)


def test_an_interrupted_run_reports_its_last_evaluation(synthetic):
    class StopAfterRound(TrainCallback):
        def on_round(self, record):
            if record.round_index == 3:
                raise KeyboardInterrupt

    task, data = synthetic
    h = RunHistory()
    with pytest.raises(KeyboardInterrupt):
        train(data, RnB(), task.budget.override(steps=40, steps_per_round=5, eval_every=3), history=h,
              callbacks=[StopAfterRound()], progress=False)
    assert [r.evaluated for r in h.rounds] == [False, False, True, False]
    assert h.final_mean_eval_loss == h.rounds[2].mean_eval_loss   # not the NaN of the skipped round 3
