"""The default task at its default round length: R&B's overhead stays below the paper's 0.1 %."""

import pytest
from mixbench.algorithms.rnb import RnB
from mixbench.tasks.champ import Champ

from mixbench.engine.trainer import train


@pytest.mark.slow
def test_rnb_overhead_on_champ_is_below_a_tenth_of_a_percent():
    task = Champ()
    # Two default-length rounds (one R&B update) on the real data; 1 eval example per domain
    # keeps it quick and does not change the training FLOPs the overhead is relative to.
    cfg = task.budget.override(steps=2 * task.budget.steps_per_round, eval_per_domain=1)
    history = train(task.load(), RnB(), cfg, progress=False)
    report = history.meter.report()
    assert 0 < report.paper_flops <= report.overhead_flops
    assert report.flops_pct < 0.1, report.to_dict()
    assert history.final_mean_eval_loss < history.initial_mean_eval_loss
