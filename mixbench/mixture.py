"""A sampling mixture over a run's domains, validated on construction."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mixbench.errors import MixbenchError

# Sums within this of 1 are accepted and renormalised; a float32 softmax is off by ~1e-7.
SUM_TOLERANCE = 1e-6


class InvalidMixture(MixbenchError, ValueError):
    """Raised when weights are not a finite probability vector over the run's domains."""


class Mixture:
    """An immutable probability vector p over m domains: finite, p_i >= 0, sum(p) = 1.

    Anything else is refused at construction, so a Mixture that exists is always usable for
    sampling. `num_domains` pins the length to the run's domain count.
    """

    __slots__ = ("_p",)

    def __init__(self, weights: Iterable[float], num_domains: int | None = None):
        p = np.array(weights, dtype=np.float64).reshape(-1)
        if num_domains is not None and p.shape[0] != num_domains:
            raise InvalidMixture(f"mixture has {p.shape[0]} entries, the run has {num_domains} domains")
        if p.shape[0] == 0:
            raise InvalidMixture("mixture is empty")
        if not np.all(np.isfinite(p)):
            raise InvalidMixture(f"mixture has non-finite entries: {p.tolist()}")
        if np.any(p < 0):
            raise InvalidMixture(f"mixture has negative entries: {p.tolist()}")
        total = p.sum()
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise InvalidMixture(f"mixture sums to {total:.8g}, not 1")
        p = p / total
        p.setflags(write=False)
        self._p = p

    @classmethod
    def uniform(cls, num_domains: int) -> Mixture:
        if num_domains < 1:
            raise InvalidMixture(f"a mixture needs at least one domain, got {num_domains}")
        return cls(np.full(num_domains, 1.0 / num_domains))

    @classmethod
    def exact(cls, weights: Iterable[float]) -> Mixture:
        """These very weights (a checkpoint's, restored): checked as any mixture is, but not
        renormalised, since dividing by a sum one rounding away from 1 changes the last bits."""
        mixture = cls(weights)
        p = np.array(weights, dtype=np.float64).reshape(-1)
        p.setflags(write=False)
        mixture._p = p
        return mixture

    @classmethod
    def proportional(cls, sizes: Iterable[float]) -> Mixture:
        sizes = np.asarray(sizes, dtype=np.float64)
        if sizes.sum() <= 0:
            raise InvalidMixture("cannot make a proportional mixture from sizes that sum to 0")
        return cls(sizes / sizes.sum())

    @property
    def weights(self) -> np.ndarray:
        """Read-only float64 array of the m weights."""
        return self._p

    def __len__(self) -> int:
        return self._p.shape[0]

    def __array__(self, dtype=None, copy=None):
        return self._p.astype(dtype) if dtype is not None else self._p.copy()

    def __eq__(self, other) -> bool:
        return isinstance(other, Mixture) and np.array_equal(self._p, other._p)

    def __hash__(self) -> int:
        return hash(self._p.tobytes())

    def tolist(self) -> list[float]:
        return self._p.tolist()

    def entropy(self) -> float:
        p = self._p[self._p > 0]
        return float(-(p * np.log(p)).sum())

    def __repr__(self) -> str:
        return "Mixture([" + ", ".join(f"{x:.4f}" for x in self._p) + "])"
