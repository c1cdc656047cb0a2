"""A probe whose answers follow a known linear model, for the parity tests.

The "model" is a vector x (m,): how much training each domain has had so far. A training step on
mixture p moves x by p (a weighted step by each domain's share of the step's total weight), and

    eval_losses()     = L0 − A·x                       (m,)
    gradient(d)       = B[d] + (x·1)·C[d]              (D,); d = None is the target row (gradients(ds):
                        the same rows, stacked)
    token loss        = (L0 − A·x)[domain] + noise, per token of each example   (a weighted
                        step's BatchLosses; an example's loss is the sum over its tokens)

Everything is deterministic given the seed, so a strategy driven through this probe and a
transcription of its reference rule driven through a second probe with the same seed see the
same numbers whenever they make the same calls. Every call is logged in `calls`, so a test can
also check that both made them in the same order.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from mixbench.mixture import Mixture
from mixbench.probe import BatchLosses, FrozenModel, Probe, check_charge, check_weights

TOKENS = 7   # the longest example of a scripted batch


class FrozenX(FrozenModel):
    def __init__(self, x: np.ndarray):
        self.x = x.copy()


class LinearProbe(Probe):
    def __init__(self, num_domains: int, seed: int = 0, grad_dim: int = 16, budget: int = 10_000,
                 batch_size: int = 8):
        rng = np.random.default_rng(seed)
        m = num_domains
        self.m, self.batch_size = m, batch_size
        self.L0 = rng.uniform(3.0, 5.0, size=m)
        # Training on a domain helps itself most and the others a little (sometimes hurts them).
        self.A = 0.02 * np.eye(m) + 0.004 * rng.normal(size=(m, m))
        self.B = rng.normal(size=(m + 1, grad_dim))          # last row: the target (eval set)
        self.C = 0.01 * rng.normal(size=(m + 1, grad_dim))
        self.noise = np.random.default_rng(seed + 1)          # per-example loss noise
        self.x = np.zeros(m)
        self.budget = budget
        self.in_branch = False
        self.charged: dict[str, float] = {}
        self.calls: list[tuple] = []

    # -- the linear model ----------------------------------------------------------------------
    def losses_at(self, x: np.ndarray) -> np.ndarray:
        return self.L0 - self.A @ x

    def charge(self, label: str, flops: float) -> None:
        check_charge(label, flops)
        self.charged[label] = self.charged.get(label, 0.0) + flops
        self.calls.append(("charge", label))

    def eval_losses(self) -> np.ndarray:
        self.calls.append(("eval_losses",))
        return self.losses_at(self.x)

    def gradient(self, domain: int | None = None) -> np.ndarray:
        self.calls.append(("gradient", domain))
        row = self.m if domain is None else domain
        return self.B[row] + self.x.sum() * self.C[row]

    def gradients(self, sources) -> np.ndarray:
        """The slices of one batch: here each source's gradient as `gradient` gives it."""
        self.calls.append(("gradients", tuple(sources)))
        rows = [self.m if s is None else s for s in sources]
        return self.B[rows] + self.x.sum() * self.C[rows]

    def train(self, mixture: Mixture, steps: int, *, weigh=None, reference=None) -> list[float]:
        assert isinstance(mixture, Mixture) and len(mixture) == self.m
        self.calls.append(("train", tuple(np.round(mixture.weights, 12)), steps, weigh is not None))
        if not self.in_branch:
            assert weigh is None, "weighted steps only inside a branch"
            steps = min(steps, self.budget)
            self.budget -= steps
        losses = []
        for _ in range(steps):
            if weigh is None:
                losses.append(float(mixture.weights @ self.losses_at(self.x)))
                self.x = self.x + mixture.weights
                continue
            batch = self.batch(mixture, reference)
            w = check_weights(weigh(batch), batch)
            losses.append(float(w @ batch.row_loss))
            share = np.bincount(batch.domains, weights=w * batch.row_weight, minlength=self.m)
            self.x = self.x + (share / share.sum() if share.sum() > 0 else 0.0)
        return losses

    def batch(self, mixture: Mixture, reference: FrozenX | None) -> BatchLosses:
        """A batch of `batch_size` examples with domains drawn from `mixture`, 3..7 tokens each;
        every token's loss is its domain's loss plus its own noise (0 past an example's end)."""
        domains = self.noise.choice(self.m, size=self.batch_size, p=mixture.weights)
        tokens = self.noise.integers(3, 8, size=self.batch_size)
        scored = np.arange(TOKENS)[None, :] < tokens[:, None]
        jitter = self.noise.normal(scale=0.3, size=(self.batch_size, TOKENS))
        token_loss = np.where(scored, self.losses_at(self.x)[domains][:, None] + jitter, 0.0)
        ref = None
        if reference is not None:
            ref = np.where(scored, self.losses_at(reference.x)[domains][:, None] + jitter[:, ::-1] / 2, 0.0)
        return BatchLosses(domains=domains, row_loss=token_loss.sum(1), row_weight=tokens.astype(np.float64),
                           reference_loss=None if ref is None else ref.sum(1),
                           token_loss=token_loss, reference_token_loss=ref)

    def freeze(self) -> FrozenModel:
        self.calls.append(("freeze",))
        return FrozenX(self.x)

    @contextmanager
    def branch(self):
        assert not self.in_branch, "branches do not nest"
        saved, self.in_branch = self.x.copy(), True
        self.calls.append(("branch",))
        try:
            yield
        finally:
            self.x, self.in_branch = saved, False
            self.calls.append(("end_branch",))

    @property
    def steps_left(self) -> int:
        return self.budget
