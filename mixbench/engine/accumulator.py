"""Where the gradient tap puts its per-domain gradients for the round."""

from __future__ import annotations

import numpy as np
import torch

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
