"""Drawing batches by a mixture: each example picks its domain from p, then an example of it."""

from __future__ import annotations

import numpy as np
import torch

from mixbench.mixture import Mixture


class MixtureSampler:
    def __init__(self, domain_ids: torch.Tensor, num_domains: int, seed: int):
        ids = domain_ids.cpu().numpy()
        self.pools = [np.flatnonzero(ids == d) for d in range(num_domains)]
        empty = [d for d, pool in enumerate(self.pools) if pool.size == 0]
        if empty:
            raise ValueError(f"domains {empty} have no training examples")
        self.rng = np.random.default_rng(seed)

    def sample(self, mixture: Mixture, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (example indices, domain ids), each (batch_size,)."""
        domains = self.rng.choice(len(self.pools), size=batch_size, p=mixture.weights)
        picks = np.array([self.pools[d][self.rng.integers(self.pools[d].size)] for d in domains])
        return picks, domains

    # Part of a checkpoint: resuming must draw the same batches.
    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
