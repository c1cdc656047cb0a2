"""The gradient tap: per-domain final-layer gradients from the normal backward pass.

For a head s = a Wᵀ (+ b), autograd computes the weight gradient as Sᵀ A over all rows (tokens)
of the batch. The tap *replaces* that one product by a sum over the domains present,
Σ_d S_dᵀ A_d: each term is added into domain d's accumulator and into the weight's gradient.
The products add up to the same FLOPs as the single one; the true extras are the accumulator
adds (metered under "tap"). No second backward pass, no per-example gradients.
"""

from __future__ import annotations

import types
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mixbench.meter import Meter
from mixbench.strategy import DomainGradients


class ExactAccumulator:
    """Exact per-domain gradient sums: m × (V·h) floats.

    Plain tensors (`sums`, `counts`), so a distributed run can all-reduce them. A sketching
    accumulator can replace this class behind the same four methods.
    """

    def __init__(self, num_domains: int, numel: int, device):
        self.sums = torch.zeros(num_domains, numel, dtype=torch.float32, device=device)
        self.counts = torch.zeros(num_domains, dtype=torch.long, device=device)

    def add(self, domain: int, grad: torch.Tensor) -> None:
        self.sums[domain] += grad.reshape(-1).to(torch.float32)

    def add_counts(self, domain_ids: torch.Tensor) -> None:
        self.counts += torch.bincount(domain_ids, minlength=self.counts.shape[0])

    def snapshot(self) -> DomainGradients:
        return DomainGradients(
            sums=self.sums.detach().cpu().numpy().copy(),
            counts=self.counts.cpu().numpy().astype(np.int64),
        )

    def reset(self) -> None:
        self.sums.zero_()
        self.counts.zero_()


class _LinearSplitByDomain(torch.autograd.Function):
    """y = F.linear(a, W, b) whose backward splits dL/dW by the domain of each example."""

    @staticmethod
    def forward(ctx, a, weight, bias, domain_ids, tap):
        ctx.save_for_backward(a, weight, domain_ids)
        ctx.tap = tap
        ctx.has_bias = bias is not None
        return F.linear(a, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        a, weight, domain_ids = ctx.saved_tensors
        grad_a = grad_out @ weight if ctx.needs_input_grad[0] else None          # (B, T, h)
        grad_w = ctx.tap._split_weight_grad(a, grad_out, domain_ids).to(weight.dtype)  # (V, h)
        grad_b = None
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.reshape(-1, grad_out.shape[-1]).sum(0)
        return grad_a, (grad_w if ctx.needs_input_grad[1] else None), grad_b, None, None


class GradientTap:
    """Installs itself on a model's final nn.Linear; `remove()` restores it.

    Call `set_batch(domain_ids)` before each training forward pass: the example -> domain map is
    captured by that forward (and used up), so the backward splits by the batch that produced it.
    Forward passes under `torch.no_grad()` (evaluation) are plain linear layers.
    """

    def __init__(self, head: nn.Linear, num_domains: int, meter: Meter, accumulator=None):
        if not isinstance(head, nn.Linear):
            raise TypeError(f"the gradient tap needs an nn.Linear final layer, got {type(head).__name__}")
        self.head = head
        self.meter = meter
        self.accumulator = accumulator or ExactAccumulator(num_domains, head.weight.numel(), head.weight.device)
        self._domain_ids: torch.Tensor | None = None
        self._paused = False
        tap = self

        def forward(module, a):
            if tap._paused or not torch.is_grad_enabled():  # evaluation or a probe: nothing to split
                return F.linear(a, module.weight, module.bias)
            if tap._domain_ids is None:
                raise RuntimeError("GradientTap.set_batch(domain_ids) must be called before each training forward")
            domain_ids, tap._domain_ids = tap._domain_ids, None  # one batch, one forward
            return _LinearSplitByDomain.apply(a, module.weight, module.bias, domain_ids, tap)

        head.forward = types.MethodType(forward, head)

    def set_batch(self, domain_ids: torch.Tensor) -> None:
        """Domain index of each example (row of dim 0) in the next forward pass; counts them."""
        self._domain_ids = domain_ids
        self.accumulator.add_counts(domain_ids)

    @contextmanager
    def paused(self):
        """Forward passes inside are plain linear layers: a probe's extra gradient must not be
        counted as training data of any domain."""
        self._paused, before = True, self._paused
        try:
            yield
        finally:
            self._paused = before

    def remove(self) -> None:
        if "forward" in vars(self.head):
            del self.head.forward

    def snapshot_and_reset(self) -> DomainGradients:
        snap = self.accumulator.snapshot()
        self.accumulator.reset()
        return snap

    def _split_weight_grad(self, a: torch.Tensor, grad_out: torch.Tensor, domain_ids: torch.Tensor):
        B = a.shape[0]
        A = a.reshape(B, -1, a.shape[-1])                  # (B, T, h)
        S = grad_out.reshape(B, -1, grad_out.shape[-1])   # (B, T, V)
        present = torch.unique(domain_ids).tolist()
        total = None
        for d in present:
            rows = domain_ids == d
            # (V, n_d*T) @ (n_d*T, h): this domain's share of the usual Sᵀ A product.
            g = S[rows].reshape(-1, S.shape[-1]).t() @ A[rows].reshape(-1, A.shape[-1]).to(S.dtype)
            with self.meter.timed("tap", "accumulate"):
                self.accumulator.add(d, g)
                if total is None:
                    total = g
                else:
                    total += g
        # One add into the accumulator per domain, one into the running total for all but the first.
        self.meter.add_flops("tap", "accumulate", (2 * len(present) - 1) * total.numel())
        return total
