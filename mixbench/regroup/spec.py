"""How a run's domains are made: the task's original labels, or Regroup's clusters (and how
Regroup settles on its clustering: the k rule, the smallest cluster, near-duplicates)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from mixbench.errors import MixbenchError
from mixbench.regroup.clustering import parse_k

DEFAULT_K = "2:64"  # the k range swept when `regroup` names none
# The paper's rule stays the default until the rule study (issue 30) has measured which rule's k
# gives the lowest loss across tasks.
DEFAULT_K_RULE = "silhouette"


@dataclass(frozen=True)
class KChoice:
    """How Regroup settles on one clustering of a sweep: the k rule that picks k (a name in
    `mixbench.registry.k_rules`), the fewest training examples a cluster may hold (a k with a
    smaller cluster is passed over), and the cosine similarity at and above which training texts
    count as one before clustering (None: every text counts)."""

    rule: str = DEFAULT_K_RULE
    min_cluster_size: int = 1
    collapse: float | None = None

    def __post_init__(self):
        if not isinstance(self.rule, str) or not self.rule:
            raise MixbenchError(f"--k-rule must name a k rule, got {self.rule!r}")
        if isinstance(self.min_cluster_size, bool) or not isinstance(self.min_cluster_size, int) \
                or self.min_cluster_size < 1:
            raise MixbenchError(f"--min-cluster-size must be a whole number of at least 1, "
                                f"got {self.min_cluster_size!r}")
        if self.collapse is not None and (isinstance(self.collapse, bool) or not isinstance(self.collapse, (int, float))
                                          or not math.isfinite(self.collapse) or not 0 < self.collapse <= 1):
            raise MixbenchError(f"--collapse-duplicates must be a cosine similarity in (0, 1], got {self.collapse!r}")

    def check(self) -> None:
        """The rule is a registered one (MixbenchError naming the known ones otherwise)."""
        from mixbench import registry

        registry.k_rules.get(self.rule)

    @property
    def label(self) -> str:
        """In words, for logs: 'kneedle', 'kneedle, clusters >= 20, near-duplicates (cosine >= 0.95) as one'."""
        parts = [self.rule]
        if self.min_cluster_size > 1:
            parts.append(f"clusters >= {self.min_cluster_size}")
        if self.collapse is not None:
            parts.append(f"near-duplicates (cosine >= {self.collapse:g}) as one")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> KChoice:
        try:
            return cls(**values)
        except TypeError as exc:
            raise MixbenchError(f"malformed k choice {values!r} ({exc})") from None


@dataclass(frozen=True)
class DomainSpec:
    method: str                  # "original" or "regroup"
    ks: tuple[int, ...] = ()     # k values to sweep (one value = fixed k)
    choice: KChoice = field(default_factory=KChoice)   # how Regroup picks among them

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
