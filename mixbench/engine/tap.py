"""The gradient tap: per-domain final-layer gradients from the normal backward pass.

For a head s = a Wᵀ (+ b), autograd computes the weight gradient as Sᵀ A over all rows (tokens)
of the batch. The tap *replaces* that one product by a sum over the domains present,
Σ_d S_dᵀ A_d: each term is added into domain d's accumulator and into the weight's gradient.
The products add up to the same FLOPs as the single one; the true extras are the accumulator
adds (metered under "tap"). No second backward pass, no per-example gradients.

    tap = GradientTap(model.head, num_domains)
    with tap.batch(domain_ids):          # (B,) domain of each example of the batch
        loss = loss_of(model, batch)     # the head's forward inside the block is split...
    loss.backward()                      # ...in this backward
    grads = tap.snapshot_and_reset()     # at the round end
    tap.remove()

It works on any nn.Linear of any model (a forward hook, removable, no change to the module), so
a training loop other than mixbench's can use it as it is. Where m exact V × h sums would not fit
the memory budget, the accumulator sketches them (mixbench.engine.accumulator); the per-domain
terms S_dᵀ A_d then exist one at a time, as the backward builds the weight gradient from them, and
only their sketches are kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

from mixbench.engine.accumulator import ExactAccumulator
from mixbench.engine.meter import Meter
from mixbench.strategy import DomainGradients


class GradientTap:
    """Splits an nn.Linear's weight gradient by the domain of each example; `remove()` ends it.

    Forward passes outside a `batch()` block, and any under `torch.no_grad()` (evaluation), are
    the plain linear layer: nothing is split or counted.
    """

    def __init__(self, head: nn.Module, num_domains: int, meter: Meter | None = None, accumulator=None):
        if not isinstance(head, nn.Linear):
            raise TypeError(f"the gradient tap needs an nn.Linear final layer, got {type(head).__name__}")
        self.head = head
        self.meter = meter if meter is not None else Meter()
        self.num_domains = num_domains
        if accumulator is None:
            accumulator = ExactAccumulator(num_domains, tuple(head.weight.shape), head.weight.device)
        self.accumulator = accumulator
        self._domain_ids: torch.Tensor | None = None
        self._hook = head.register_forward_hook(self._split_this_forward)

    @contextmanager
    def batch(self, domain_ids: torch.Tensor) -> Iterator[None]:
        """Inside the block, the head's training forward passes are split by `domain_ids`, the
        domain of each example (row of dim 0); the examples are counted when their forward is."""
        self._domain_ids, before = domain_ids, self._domain_ids
        try:
            yield
        finally:
            self._domain_ids = before

    def weight_gradient(self, a: torch.Tensor, grad_out: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """(V, h) the head's weight gradient Sᵀ A computed as Σ_d S_dᵀ A_d over the accumulator
        slots present (domains, or their halves), each term added into its slot on the way (the
        backward's job)."""
        B = a.shape[0]
        A = a.reshape(B, -1, a.shape[-1])                  # (B, T, h)
        S = grad_out.reshape(B, -1, grad_out.shape[-1])   # (B, T, V)
        present = torch.unique(slots).tolist()
        total = None
        for d in present:
            rows = slots == d
            # (V, n_d*T) @ (n_d*T, h): this slot's share of the usual Sᵀ A product.
            g = S[rows].reshape(-1, S.shape[-1]).t() @ A[rows].reshape(-1, A.shape[-1]).to(S.dtype)
            with self.meter.timed("tap", "accumulate"):
                self.accumulator.add(d, g)
                total = g if total is None else total.add_(g)
        # The accumulator's work per domain, and one add into the running total for all but the first.
        numel = total.numel()
        self.meter.add_flops("tap", "accumulate",
                             len(present) * self.accumulator.flops_per_add(numel) + (len(present) - 1) * numel)
        return total

    def snapshot_and_reset(self) -> DomainGradients:
        snap = self.accumulator.snapshot()
        self.accumulator.reset()
        return snap

    def remove(self) -> None:
        """Detach from the head for good; removing twice is harmless."""
        self._hook.remove()

    def __enter__(self) -> GradientTap:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def _split_this_forward(self, module: nn.Linear, args, output):
        if self._domain_ids is None or not torch.is_grad_enabled():
            return None   # keep the module's own output
        a, ids = args[0], self._domain_ids
        if ids.ndim != 1 or a.shape[0] != ids.shape[0]:
            raise ValueError(f"the tap was given domain ids of shape {tuple(ids.shape)} for a batch of "
                             f"{a.shape[0]} examples")
        if ids.numel():
            low, high = torch.stack(torch.aminmax(ids)).tolist()   # one reduction, one read back
            if low < 0 or high >= self.num_domains:
                raise ValueError(f"domain ids must lie in [0, {self.num_domains}), got {low}..{high}")
        # Each example's share goes to its slot in the accumulator: its domain, or (halves) one
        # of its domain's two halves.
        slots = self.accumulator.route(ids)
        self.accumulator.add_counts(slots)
        # The forward product is the module's own; only the backward of this output is replaced.
        return _SplitWeightGradient.apply(output.detach(), a, module.weight, module.bias, slots, self)


class _SplitWeightGradient(torch.autograd.Function):
    """Passes the head's output through; its backward gives the usual input and bias gradients
    and has the tap build the weight gradient domain by domain."""

    @staticmethod
    def forward(ctx, output, a, weight, bias, domain_ids, tap):
        ctx.save_for_backward(a, weight, domain_ids)
        ctx.tap = tap
        ctx.has_bias = bias is not None
        return output.view_as(output)

    @staticmethod
    def backward(ctx, grad_out):
        a, weight, domain_ids = ctx.saved_tensors
        grad_a = grad_out @ weight if ctx.needs_input_grad[1] else None               # (B, T, h)
        grad_w = None
        if ctx.needs_input_grad[2]:
            grad_w = ctx.tap.weight_gradient(a, grad_out, domain_ids).to(weight.dtype)  # (V, h)
        grad_b = None
        if ctx.has_bias and ctx.needs_input_grad[3]:
            grad_b = grad_out.reshape(-1, grad_out.shape[-1]).sum(0)
        return None, grad_a, grad_w, grad_b, None, None
