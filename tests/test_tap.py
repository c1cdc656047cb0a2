"""The gradient tap against autograd: per-domain head gradients from the normal backward pass."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mixbench.engine.meter import Meter
from mixbench.engine.tap import GradientTap
from mixbench.models.gpt import GPT, GPTConfig
from mixbench.strategy import DomainGradients

CFG = GPTConfig(vocab_size=257, seq_len=16, n_layer=1, n_head=2, n_embd=16)
B, T, M = 6, 16, 3
V, H = CFG.vocab_size, CFG.n_embd
IGNORE = -100
# The tolerance: 1e-5 absolute and relative, in float32.
TOL = dict(rtol=1e-5, atol=1e-5)


def _make_model(dtype=torch.float32, seed=0) -> GPT:
    torch.manual_seed(seed)
    return GPT(CFG).to(dtype)


def _make_batch(seed, domain_ids):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    # Ignore a prompt-like prefix of varying length in each row and some scattered positions.
    for row in range(B):
        targets[row, : (row * 3) % 7] = IGNORE
    targets[torch.rand(B, T, generator=g) < 0.15] = IGNORE
    assert (targets == IGNORE).any() and (targets != IGNORE).any(dim=1).all()
    return idx, targets, torch.tensor(domain_ids, dtype=torch.long)


# Domain 1 is absent from the first batch; all three are present in the second.
DOMAINS_1 = [0, 2, 0, 2, 2, 0]
DOMAINS_2 = [1, 0, 1, 2, 1, 1]


def _token_losses(model, idx, targets):
    logits = model(idx)  # (B, T, V)
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none", ignore_index=IGNORE
    ).view(B, T)


def _batch_loss(model, idx, targets):
    n_valid = (targets != IGNORE).sum()
    return _token_losses(model, idx, targets).sum() / n_valid


def _per_domain_reference(ref_model, idx, targets, domain_ids, m=M):
    """torch.autograd.grad of each domain's share of the batch loss w.r.t. the head weight,
    on an untapped model: sum of domain-d token losses / all non-ignored targets of the batch."""
    tok = _token_losses(ref_model, idx, targets)
    n_valid = (targets != IGNORE).sum()
    out = []
    for d in range(m):
        rows = domain_ids == d
        if not rows.any():
            out.append(torch.zeros_like(ref_model.head.weight))
            continue
        share = tok[rows].sum() / n_valid
        (g,) = torch.autograd.grad(share, ref_model.head.weight, retain_graph=True)
        out.append(g)
    return torch.stack(out)  # (m, V, h)


def _plain_grads(ref_model, idx, targets):
    ref_model.zero_grad(set_to_none=True)
    _batch_loss(ref_model, idx, targets).backward()
    return {n: p.grad.detach().clone() for n, p in ref_model.named_parameters()}


def _tapped_step(model, tap, idx, targets, domain_ids):
    with tap.batch(domain_ids):
        loss = _batch_loss(model, idx, targets)
    loss.backward()  # outside the block, as the trainer does: the split happens in this backward
    return loss


@pytest.fixture
def models():
    model = _make_model()
    ref = copy.deepcopy(model)  # same weights, never tapped
    return model, ref


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_per_domain_sums_equal_autograd_of_each_domains_share(dtype):
    model = _make_model(dtype)
    ref = copy.deepcopy(model)
    tap = GradientTap(model.head, M, Meter())
    idx, targets, dom = _make_batch(1, DOMAINS_1)

    _tapped_step(model, tap, idx, targets, dom)

    sums = tap.accumulator.sums.reshape(M, V, H)
    expected = _per_domain_reference(ref, idx, targets, dom)
    assert expected.abs().max() > 1e-3  # the comparison is not between two near-zero tensors
    for d in (0, 2):
        assert sums[d].abs().max() > 0
        torch.testing.assert_close(sums[d].double(), expected[d].double(), **TOL)
    # The absent domain accumulated nothing at all.
    assert torch.count_nonzero(sums[1]) == 0
    # The domain sums add up to the head's gradient.
    torch.testing.assert_close(sums.sum(0).double(), model.head.weight.grad.double(), **TOL)


def test_grads_with_tap_equal_grads_without(models):
    model, ref = models
    tap = GradientTap(model.head, M, Meter())
    idx, targets, dom = _make_batch(1, DOMAINS_1)

    loss = _tapped_step(model, tap, idx, targets, dom)
    plain = _plain_grads(ref, idx, targets)
    with torch.no_grad():
        assert loss.item() == pytest.approx(_batch_loss(ref, idx, targets).item(), rel=1e-6)

    names = [n for n, _ in model.named_parameters()]
    assert names == list(plain) and "head.weight" in names and len(names) > 5
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, plain[name], **TOL, msg=lambda m, n=name: f"{n}: {m}")


def test_counts_and_accumulation_over_two_batches(models):
    model, ref = models
    meter = Meter()
    tap = GradientTap(model.head, M, meter)
    b1 = _make_batch(1, DOMAINS_1)
    b2 = _make_batch(2, DOMAINS_2)

    _tapped_step(model, tap, *b1)
    np.testing.assert_array_equal(
        tap.accumulator.counts.numpy(), torch.bincount(b1[2], minlength=M).numpy()
    )
    _tapped_step(model, tap, *b2)  # no optimiser step: both batches see the same weights

    expected = _per_domain_reference(ref, *b1) + _per_domain_reference(ref, *b2)
    torch.testing.assert_close(tap.accumulator.sums.reshape(M, V, H), expected, **TOL)
    # Domain 1 appears only in the second batch.
    torch.testing.assert_close(tap.accumulator.sums.reshape(M, V, H)[1], _per_domain_reference(ref, *b2)[1], **TOL)

    snap = tap.snapshot_and_reset()
    assert isinstance(snap, DomainGradients)
    assert isinstance(snap.sums, np.ndarray) and isinstance(snap.counts, np.ndarray)
    assert snap.sums.shape == (M, V * H)
    assert snap.counts.dtype == np.int64
    np.testing.assert_array_equal(snap.counts, [3 + 1, 4, 3 + 1])  # bincount of both batches
    np.testing.assert_allclose(snap.sums.reshape(M, V, H), expected.numpy(), rtol=1e-5, atol=1e-5)

    # The accumulator is zeroed, and the snapshot does not alias it.
    assert torch.count_nonzero(tap.accumulator.sums) == 0
    assert torch.count_nonzero(tap.accumulator.counts) == 0
    assert np.abs(snap.sums).max() > 0
    again = tap.snapshot_and_reset()
    assert not again.sums.any() and not again.counts.any()

    # A new round after the reset accumulates from zero.
    _tapped_step(model, tap, *b1)
    torch.testing.assert_close(
        tap.accumulator.sums.reshape(M, V, H), _per_domain_reference(ref, *b1), **TOL
    )


def test_eval_forward_under_no_grad_is_plain(models):
    model, ref = models
    tap = GradientTap(model.head, M, Meter())
    idx, _, _ = _make_batch(3, DOMAINS_1)
    with torch.no_grad():
        out = model(idx)
        expected = ref(idx)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert torch.count_nonzero(tap.accumulator.counts) == 0
    assert torch.count_nonzero(tap.accumulator.sums) == 0


def test_training_forward_outside_a_batch_block_is_plain(models):
    model, ref = models
    meter = Meter()
    tap = GradientTap(model.head, M, meter)
    idx, targets, dom = _make_batch(3, DOMAINS_1)

    # Never inside tap.batch(): the plain gradient, nothing split, counted or metered.
    _batch_loss(model, idx, targets).backward()
    plain = _plain_grads(ref, idx, targets)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[name], **TOL, msg=lambda m, n=name: f"{n}: {m}")
    assert torch.count_nonzero(tap.accumulator.sums) == 0
    assert torch.count_nonzero(tap.accumulator.counts) == 0
    assert dict(meter.flops) == {}

    # The block covers only the forward passes inside it: the next one after it is plain again.
    model.zero_grad(set_to_none=True)
    _tapped_step(model, tap, idx, targets, dom)
    split = tap.accumulator.sums.clone()
    assert torch.count_nonzero(split) > 0
    flops = dict(meter.flops)
    model.zero_grad(set_to_none=True)
    _batch_loss(model, idx, targets).backward()
    assert torch.equal(tap.accumulator.sums, split)
    assert dict(meter.flops) == flops
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[name], **TOL, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("length", [B - 1, B + 1])
def test_domain_ids_of_the_wrong_length_raise(models, length):
    model, _ = models
    tap = GradientTap(model.head, M, Meter())
    idx, targets, _ = _make_batch(3, DOMAINS_1)
    wrong = torch.arange(length) % M
    with pytest.raises(ValueError, match=rf"domain ids of shape \({length},\) for a batch of {B} examples"):
        with tap.batch(wrong):
            model(idx)
    assert torch.count_nonzero(tap.accumulator.sums) == 0
    assert torch.count_nonzero(tap.accumulator.counts) == 0   # a refused batch is not counted


def test_domain_ids_out_of_range_raise_and_are_not_counted(models):
    model, _ = models
    tap = GradientTap(model.head, M, Meter())
    idx, _, _ = _make_batch(3, DOMAINS_1)
    with pytest.raises(ValueError, match=rf"domain ids must lie in \[0, {M}\)"):
        with tap.batch(torch.tensor([0, 1, 2, M, 0, 1])):
            model(idx)
    assert torch.count_nonzero(tap.accumulator.counts) == 0


def test_examples_are_counted_only_when_their_forward_is_split(models):
    model, _ = models
    tap = GradientTap(model.head, M, Meter())
    idx, _, dom = _make_batch(3, DOMAINS_1)
    with tap.batch(dom), torch.no_grad():
        model(idx)                                  # evaluation inside a block: nothing to split
    assert torch.count_nonzero(tap.accumulator.counts) == 0
    with tap.batch(dom):
        model(idx)
    np.testing.assert_array_equal(tap.accumulator.counts.numpy(), np.bincount(dom.numpy(), minlength=M))
    tap.remove()
    with tap.batch(dom):
        model(idx)                                  # a removed tap sees nothing
    np.testing.assert_array_equal(tap.accumulator.counts.numpy(), np.bincount(dom.numpy(), minlength=M))


def test_remove_restores_plain_behaviour(models):
    model, ref = models
    meter = Meter()
    hooks_before = dict(model.head._forward_hooks)
    tap = GradientTap(model.head, M, meter)
    assert len(model.head._forward_hooks) == len(hooks_before) + 1
    idx, targets, dom = _make_batch(4, DOMAINS_2)
    _tapped_step(model, tap, idx, targets, dom)
    before = tap.accumulator.sums.clone()
    flops_before = dict(meter.flops)

    tap.remove()
    assert dict(model.head._forward_hooks) == hooks_before == {}
    model.zero_grad(set_to_none=True)
    _batch_loss(model, idx, targets).backward()
    plain = _plain_grads(ref, idx, targets)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[name], **TOL)
    # The removed tap no longer sees anything, even inside a batch() block.
    model.zero_grad(set_to_none=True)
    with tap.batch(dom):
        loss = _batch_loss(model, idx, targets)
    loss.backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[name], **TOL)
    assert torch.equal(tap.accumulator.sums, before)
    assert dict(meter.flops) == flops_before
    tap.remove()  # removing twice is harmless
    assert dict(model.head._forward_hooks) == {}


def test_meter_counts_accumulator_adds(models):
    model, _ = models
    meter = Meter()
    tap = GradientTap(model.head, M, meter)
    key = ("tap", "accumulate")

    _tapped_step(model, tap, *_make_batch(1, DOMAINS_1))  # k = 2 domains present
    assert meter.flops[key] == (2 * 2 - 1) * V * H
    _tapped_step(model, tap, *_make_batch(2, DOMAINS_2))  # k = 3
    assert meter.flops[key] == (2 * 2 - 1) * V * H + (2 * 3 - 1) * V * H
    _tapped_step(model, tap, *_make_batch(5, [2] * B))  # k = 1: one accumulator add, no running total
    assert meter.flops[key] == (3 + 5 + 1) * V * H
    assert meter.seconds[key] > 0
    # Only the tap's own category: none of it is "strategy" (the Gram) or "train".
    assert {c for c, _ in meter.flops} == {"tap"}
    assert meter.report().overhead_flops == (3 + 5 + 1) * V * H


def test_tap_refuses_a_non_linear_head():
    with pytest.raises(TypeError):
        GradientTap(nn.Conv1d(4, 4, 1), M, Meter())


def test_tap_on_a_linear_with_bias():
    # Not the GPT head, but the tap takes any nn.Linear: bias and input gradients stay exact.
    torch.manual_seed(0)
    lin = nn.Linear(5, 7)
    ref = copy.deepcopy(lin)
    tap = GradientTap(lin, 2, Meter())
    a = torch.randn(4, 3, 5)
    dom = torch.tensor([1, 0, 1, 1])
    target = torch.randn(4, 3, 7)

    a1 = a.clone().requires_grad_()
    with tap.batch(dom):
        out = lin(a1)
    ((out - target) ** 2).sum().backward()
    a2 = a.clone().requires_grad_()
    ((ref(a2) - target) ** 2).sum().backward()

    torch.testing.assert_close(lin.weight.grad, ref.weight.grad)
    torch.testing.assert_close(lin.bias.grad, ref.bias.grad)
    torch.testing.assert_close(a1.grad, a2.grad)
    for d in (0, 1):
        rows = dom == d
        (gd,) = torch.autograd.grad(((ref(a[rows]) - target[rows]) ** 2).sum(), ref.weight)
        torch.testing.assert_close(tap.accumulator.sums[d].reshape(7, 5), gd)
