"""The eval subset every run scores, and the eval loss on the eval distribution (Σ q_i L_i)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def select_eval_subset(domain_ids: np.ndarray, per_domain: int, seed: int = 0) -> np.ndarray:
    """Indices of at most `per_domain` examples of each domain, the same for every run seed."""
    rng = np.random.default_rng(seed)
    chosen = []
    for d in np.unique(domain_ids):
        pool = np.flatnonzero(domain_ids == d)
        chosen.append(np.sort(rng.choice(pool, size=min(per_domain, pool.size), replace=False)))
    return np.sort(np.concatenate(chosen))


def weighted_mean(losses: np.ndarray, q: np.ndarray) -> float:
    """Σ q_i L_i over the domains that have a loss: the eval loss on the eval distribution."""
    ok = np.isfinite(losses) & (q > 0)
    return float((losses[ok] * q[ok]).sum() / q[ok].sum()) if ok.any() else float("nan")


@dataclass(frozen=True)
class EvalReference:
    """The task's eval examples labelled by its ORIGINAL domains. Every run of a task is also
    scored by this labelling, whatever domains it trains on (original, regrouped), so runs on
    different domain definitions are compared on one quantity: Σ q_i L_i over original domains."""

    labels: np.ndarray          # (n_eval,) index into `names` for each example of the eval split
    names: tuple[str, ...]

    @classmethod
    def of(cls, domains: list[str]) -> EvalReference:
        names = tuple(sorted(set(domains)))
        index = {d: i for i, d in enumerate(names)}
        return cls(labels=np.array([index[d] for d in domains], dtype=np.int64), names=names)

    @property
    def proportions(self) -> np.ndarray:
        """q over original domains: each one's share of the whole eval split."""
        counts = np.bincount(self.labels, minlength=len(self.names)).astype(np.float64)
        return counts / counts.sum()
