"""How a run's domains are made: the task's original labels, or Regroup's clusters."""

from __future__ import annotations

from dataclasses import dataclass

from mixbench.errors import MixbenchError
from mixbench.regroup.clustering import parse_k

DEFAULT_K = "2:64"  # the k range swept when `regroup` names none


@dataclass(frozen=True)
class DomainSpec:
    method: str                  # "original" or "regroup"
    ks: tuple[int, ...] = ()     # k values to sweep (one value = fixed k)

    @classmethod
    def parse(cls, text: str) -> DomainSpec:
        """'original', 'regroup', 'regroup:30' or 'regroup:2:40[:step]'."""
        method, _, k_spec = text.partition(":")
        if method == "original" and not k_spec:
            return cls("original")
        if method == "regroup":
            try:
                return cls("regroup", tuple(parse_k(k_spec or DEFAULT_K)))
            except ValueError as exc:
                raise MixbenchError(str(exc)) from None
        raise MixbenchError(f"--domains must be original or regroup[:K], got {text!r}")

    @property
    def label(self) -> str:
        """The results-path component: 'original' or 'regroup'."""
        return self.method
