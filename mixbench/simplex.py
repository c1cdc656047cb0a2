"""Numerically safe maps onto the probability simplex, shared by the strategies."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """exp(z) / Σ exp(z), shifted by max(z) so exp never overflows. Non-finite logits count as 0."""
    z = np.where(np.isfinite(logits), logits, 0.0)
    w = np.exp(z - z.max())
    return w / w.sum()


def exponentiated_update(prior: np.ndarray, scores: np.ndarray, eta: float) -> np.ndarray:
    """prior ⊙ exp(η · scores), normalised: the multiplicative-weights step of Aioli and DGA.
    Non-finite scores count as 0; a zero prior weight stays (almost) zero."""
    scores = np.where(np.isfinite(scores), scores, 0.0)
    return softmax(np.log(np.maximum(prior, 1e-300)) + eta * scores)
