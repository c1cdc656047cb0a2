"""The eval subset every run scores, and the eval loss on the eval distribution (Σ q_i L_i)."""

from __future__ import annotations

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
