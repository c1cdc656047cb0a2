"""The probe's weighted proxy steps and frozen reference model (what DoReMi and DoGE train their
proxies with), on a real run of the synthetic task: a weighted step with the plain loss's weights
is the plain step; the reference sees the frozen weights; everything is metered and undone."""

import numpy as np
import pytest
import torch
from mixbench.algorithms.stratified import Stratified
from mixbench.tasks.synthetic import Synthetic

from mixbench import Mixture
from mixbench.engine.trainer import train


class WeightedProbeChecks(Stratified):
    """Uniform; before training, exercises weighted steps through the probe and records what it saw."""

    def prepare(self, probe):
        state, meter = probe.session.state, probe.meter
        m = len(self.mixture_)
        uniform = Mixture.uniform(m)
        params = lambda: [p.detach().clone() for p in state.model.parameters()]  # noqa: E731
        initial = params()
        seen = self.seen_ = {}

        with probe.branch():
            probe.train(uniform, 1)
            seen["plain"] = params()
        with probe.branch():
            probe.train(uniform, 1, weigh=lambda b: np.full(len(b.domains), 1 / b.row_weight.sum()))
            seen["weighted"] = params()

        batches = []

        def keep(batch):
            batches.append(batch)
            return np.full(len(batch.domains), 1 / batch.row_weight.sum())

        before = dict(meter.flops)
        with probe.branch():
            frozen = probe.freeze()
            probe.train(uniform, 3, weigh=keep, reference=frozen)
        seen["flops"] = {k: v - before.get(k, 0.0) for k, v in meter.flops.items() if v != before.get(k, 0.0)}
        seen["batches"] = batches
        seen["restored"] = all(torch.equal(a, b) for a, b in zip(initial, state.model.parameters()))
        seen["step"] = state.step

        before = dict(meter.flops)
        seen["slices"] = probe.gradients([0, 1, None])
        seen["slice_flops"] = {k: v - before.get(k, 0.0) for k, v in meter.flops.items() if v != before.get(k, 0.0)}
        seen["one_gradient"] = probe.gradient(0)

        def in_branch(**how):
            return lambda: _in_branch(probe, lambda: probe.train(uniform, 1, **how))

        for name, call in {
            "outside": lambda: probe.train(uniform, 1, weigh=keep),
            "negative": in_branch(weigh=lambda b: -np.ones(len(b.domains))),
            "nan": in_branch(weigh=lambda b: np.full(len(b.domains), np.nan)),
            "shape": in_branch(weigh=lambda b: np.ones(3)),
            "reference alone": in_branch(reference=frozen),
        }.items():
            try:
                call()
                seen[name] = None
            except (ValueError, RuntimeError) as exc:
                seen[name] = str(exc)
        return None


def _in_branch(probe, call):
    with probe.branch():
        call()


@pytest.fixture(scope="module")
def seen():
    task = Synthetic()
    strategy = WeightedProbeChecks()
    history = train(task.load(), strategy, task.budget.override(steps=10, steps_per_round=5), progress=False)
    return strategy.seen_, history, task


def test_weighted_step_with_the_plain_weights_is_the_plain_step(seen):
    s, _, _ = seen
    for plain, weighted in zip(s["plain"], s["weighted"]):
        torch.testing.assert_close(weighted, plain, rtol=1e-5, atol=1e-7)


def test_reference_losses_come_from_the_frozen_model(seen):
    s, _, _ = seen
    first, *later = s["batches"]
    # Frozen before the first step: on that step reference and proxy are the same weights.
    np.testing.assert_allclose(first.reference_loss, first.row_loss, rtol=1e-5)
    # Two steps later the proxy has moved and the reference has not.
    assert not np.allclose(later[-1].reference_loss, later[-1].row_loss, rtol=1e-5)
    assert all(b.row_loss.shape == b.domains.shape == b.row_weight.shape for b in s["batches"])
    # Text shows the losses token by token too: rows sum to the example losses.
    for b in s["batches"]:
        np.testing.assert_allclose(b.token_loss.sum(1), b.row_loss, rtol=1e-6)
        np.testing.assert_allclose(b.reference_token_loss.sum(1), b.reference_loss, rtol=1e-6)
        np.testing.assert_array_equal((b.token_loss > 0).sum(1), b.row_weight)
    np.testing.assert_allclose(first.reference_token_loss, first.token_loss, rtol=1e-5, atol=1e-6)


def test_weighted_steps_are_metered_and_undone(seen):
    s, history, task = seen
    n, b = history.num_params, task.budget.batch_size * task.budget.seq_len
    assert s["flops"] == {("strategy", "probe_train"): 3 * 6 * n * b,
                          ("strategy", "reference_forward"): 3 * 2 * n * b}
    assert s["restored"] and s["step"] == 0
    assert len(history.train_losses) == 10


def test_gradient_slices_of_one_batch_cost_one_batch(seen):
    s, history, task = seen
    n, b = history.num_params, task.budget.batch_size * task.budget.seq_len
    assert s["slices"].shape == (3, s["one_gradient"].size)
    assert s["slice_flops"] == {("strategy", "probe_gradient"): 6 * n * b}   # 3 + 3 + 2 rows of 8
    assert np.all(np.isfinite(s["slices"])) and not np.allclose(s["slices"][0], s["slices"][2])


def test_bad_weighted_calls_are_refused(seen):
    s, _, _ = seen
    assert "only allowed inside" in s["outside"]
    assert "negative or not finite" in s["negative"] and "negative or not finite" in s["nan"]
    assert "weights for a batch of" in s["shape"]
    assert "pass weigh too" in s["reference alone"]
