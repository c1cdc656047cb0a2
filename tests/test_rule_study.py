"""The k-rule study's arithmetic (mixbench.experiments.paper.rule_study), against hand-computed
values: the nearest swept k on a log scale, per-seed regret against the best swept k, and the
leave-one-task-out choice."""

import math

import pytest

from mixbench.experiments.paper import rule_study
from mixbench.experiments.paper.rule_study import RuleRegret, TaskSweep
from mixbench.registry import k_rules

SWEPT = [4, 8, 16, 32, 64]


@pytest.mark.parametrize(("k", "nearest"), [(2, 4), (5, 4), (6, 8), (11, 8), (12, 16), (22, 16), (23, 32), (64, 64)])
def test_a_chosen_k_is_read_at_the_nearest_swept_k_by_ratio(k, nearest):
    # 5.66 = √32 is the log-midpoint of 4 and 8; 22.6 = √512 that of 16 and 32.
    assert rule_study.nearest_swept(k, SWEPT) == nearest


def _curve(peak: int) -> list[dict]:
    """A Regroup curve over 2..64 whose silhouette peaks at `peak`."""
    return [{"k": k, "inertia": 100.0 / k, "smallest": 5.0, "silhouette": -abs(math.log(k / peak))}
            for k in range(2, 65)]


def test_regret_is_the_seeds_loss_at_the_chosen_k_minus_its_loss_at_the_best_k():
    losses = {4: {0: 2.10, 1: 2.20}, 8: {0: 2.00, 1: 2.06}, 16: {0: 2.05, 1: 2.03},
              32: {0: 2.30, 1: 2.40}, 64: {0: 2.50, 1: 2.60}}
    sweep = TaskSweep("t", losses, {0: _curve(30), 1: _curve(17)})
    assert sweep.best_k() == 8   # mean 2.03 against 2.04 at k = 16
    (regret,) = rule_study.regrets(sweep, {"silhouette": k_rules.create("silhouette")})
    assert regret.chosen == {0: 30, 1: 17} and regret.evaluated == {0: 32, 1: 16}
    assert regret.regrets == pytest.approx([2.30 - 2.00, 2.03 - 2.06])
    assert regret.relative == pytest.approx((0.30 - 0.03) / 2 / 2.03)
    low, high = regret.interval()
    half = 12.7062 * (0.33 / math.sqrt(2)) / math.sqrt(2)   # t(0.975, 1 df) · sd / √n, sd = |0.30 + 0.03| / √2
    assert (low, high) == pytest.approx((0.135 - half, 0.135 + half), rel=1e-4)


def _regret(task, rule, relative):
    return RuleRegret(task, rule, {0: 8}, {0: 8}, [relative * 2.0], best_k=8, best_loss=2.0)


def test_leave_one_task_out_picks_on_the_other_tasks_and_scores_on_the_held_out_one():
    by_task = {"a": [_regret("a", "x", 0.00), _regret("a", "y", 0.05)],
               "b": [_regret("b", "x", 0.04), _regret("b", "y", 0.01)],
               "c": [_regret("c", "x", 0.01), _regret("c", "y", 0.00)]}
    held = rule_study.leave_one_task_out(by_task)
    # Held out a: on b and c, y's mean is 0.005 against x's 0.025, and y's regret on a is 0.05.
    # Held out b: x 0.005 against y 0.025. Held out c: x 0.02 against y 0.03.
    assert held == {"a": ("y", pytest.approx(0.05)), "b": ("x", pytest.approx(0.04)),
                    "c": ("x", pytest.approx(0.01))}
    assert rule_study.recommended(by_task) == "x"   # mean 0.0167 against y's 0.02
