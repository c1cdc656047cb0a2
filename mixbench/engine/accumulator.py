"""Where the gradient tap puts its per-domain gradients for the round.

Two accumulators behind the same methods (`route`, `add`, `add_counts`, `snapshot`, `reset`,
`tensors`):

  ExactAccumulator     m × V·h floats: the per-domain gradient sums themselves.
  SketchedAccumulator  m × k floats, k ≪ V·h: a random linear sketch of each sum whose inner
                       products estimate the exact ones without bias, which is all Balance reads
                       (G q is made of inner products). For a real vocabulary the exact sums do not
                       fit: SmolLM2-135M's head (V = 49,152, h = 576) takes 113 MB per domain.

and HalvesAccumulator, which keeps either of them over 2·m slots: each domain's examples
alternate between two halves, for inner products free of sampling noise (rnb's unbiased Gram).

`make_accumulator` picks the exact one when it fits the memory budget (`--tap-memory`), else the
largest sketch that does.
"""

from __future__ import annotations

import numpy as np
import torch

from mixbench.errors import MixbenchError
from mixbench.strategy import DomainGradients

MIB = 2**20
BYTES_PER_FLOAT = 4
# The sketch's buckets are rows of width h; fewer rows than this per domain is too coarse to be
# worth running (the inner products would be mostly collision noise).
MIN_SKETCH_ROWS = 16
# Buckets a column's entries spread over, rows × shift groups (see SketchedAccumulator): enough
# that two entries of one column rarely share one. More costs scratch memory (2 floats per bucket
# and column) and fold time.
COLUMN_BUCKETS = 4096
MAX_GROUPS = 32


class DomainSums:
    """What both accumulators share: per-domain `sums` (first dimension: the domain) and
    `counts`, as plain tensors."""

    sums: torch.Tensor
    counts: torch.Tensor

    @property
    def nbytes(self) -> int:
        return self.sums.numel() * self.sums.element_size()

    def add_counts(self, domain_ids: torch.Tensor) -> None:
        self.counts += torch.bincount(domain_ids, minlength=self.counts.shape[0])

    def tensors(self) -> list[torch.Tensor]:
        """What the round accumulated, as plain tensors: a data-parallel run sums each across
        ranks (in place) before the snapshot, and a checkpoint saves them."""
        return [self.sums, self.counts]

    def route(self, domain_ids: torch.Tensor) -> torch.Tensor:
        """The slot each example's gradient goes to: its domain."""
        return domain_ids

    def snapshot(self) -> DomainGradients:
        return DomainGradients(
            sums=self.sums.detach().reshape(self.sums.shape[0], -1).cpu().numpy().copy(),
            counts=self.counts.cpu().numpy().astype(np.int64),
        )

    def reset(self) -> None:
        self.sums.zero_()
        self.counts.zero_()


class ExactAccumulator(DomainSums):
    """Exact per-domain gradient sums: m × (V·h) floats.

    Plain tensors (`sums`, `counts`), so a distributed run can all-reduce them.
    """

    sketched = False

    def __init__(self, num_domains: int, shape: tuple[int, int], device):
        self.sums = torch.zeros(num_domains, shape[0] * shape[1], dtype=torch.float32, device=device)
        self.counts = torch.zeros(num_domains, dtype=torch.long, device=device)

    def flops_per_add(self, grad_numel: int) -> int:
        return grad_numel                                   # one add per entry

    def add(self, domain: int, grad: torch.Tensor) -> None:
        self.sums[domain] += grad.reshape(-1).to(torch.float32)


class SketchedAccumulator(DomainSums):
    """A count sketch of each domain's V × h gradient sum in `rows` × h floats (rows ≪ V).

    Entry (v, j) of a gradient goes, with the sign σ_v, to bucket (b_v, (j + r_v) mod h): row v
    is hashed to one of `rows` bucket rows, and shifted along the columns by its group's shift
    r_v (one of `groups` random shifts). Then for any two gradients X, Y

        E <sketch(X), sketch(Y)> = <X, Y>                     (σ has mean zero: no bias)

    and the error comes from pairs of entries that share a bucket. With a plain row hash (one
    group, no shift) two rows of the same column collide with probability 1/rows, and gradients
    of low rank (an LM head's are) see errors of order 1/√rows: 4–11 % in G q at V = 49,152,
    h = 576, m = 100 and 64 MB. With shifted groups such pairs collide only if their groups match
    too, 1/(rows·groups); `groups` is chosen so that rows·groups ≥ COLUMN_BUCKETS, which keeps
    the error near 1 % there (benchmarks/sketch_accuracy.py). The sketch is linear, so the
    round's sum of sketches is the sketch of the round's sum. All hashes are drawn once from
    `seed`: every domain and round use the same map, which is what makes inner products between
    domains meaningful.

    One `add` is a single index_add of the V × h term into 2·groups·rows scratch rows (the
    sign picks one of two rows, so nothing is multiplied), then each group's block folded into
    the domain's sketch with its shift: V·h adds plus 2·groups·rows·h, a pass over the term the
    head's backward builds anyway, against 2·n·V·h FLOPs for that term's product (n the
    domain's tokens in the batch). On CUDA the index_add's atomic float adds make the last bits
    depend on scheduling.
    """

    sketched = True

    def __init__(self, num_domains: int, shape: tuple[int, int], rows: int, device, seed: int = 0,
                 groups: int | None = None):
        V, h = shape
        if not 1 <= rows < V:
            raise ValueError(f"a sketch needs 1 to {V - 1} rows for a {V}-row gradient, got {rows}")
        if groups is None:
            groups = -(-COLUMN_BUCKETS // rows)
        groups = max(1, min(groups, MAX_GROUPS, h))
        gen = torch.Generator().manual_seed(seed)
        self.shape, self.rows, self.groups = (V, h), rows, groups
        self.sums = torch.zeros(num_domains, rows, h, dtype=torch.float32, device=device)
        self.counts = torch.zeros(num_domains, dtype=torch.long, device=device)
        bucket = torch.randint(rows, (V,), generator=gen)
        negative = torch.randint(2, (V,), generator=gen)
        group = torch.randint(groups, (V,), generator=gen)
        self._shifts = torch.randperm(h, generator=gen)[:groups].tolist()
        # Scratch row of vocabulary row v: its group's block, its bucket, and + or − by its sign.
        self._scratch_row = ((group * rows + bucket) * 2 + negative).to(device)
        self._scratch = torch.zeros(groups * rows * 2, h, dtype=torch.float32, device=device)

    def flops_per_add(self, grad_numel: int) -> int:
        # The index_add's add per entry; the fold's subtract and add per scratch pair.
        return grad_numel + 2 * self.groups * self.rows * self.shape[1]

    def add(self, domain: int, grad: torch.Tensor) -> None:
        h = self.shape[1]
        scratch = self._scratch.zero_()
        scratch.index_add_(0, self._scratch_row, grad.reshape(self.shape).to(torch.float32))
        signed = scratch.view(self.groups, self.rows, 2, h)
        signed = signed[:, :, 0] - signed[:, :, 1]          # (groups, rows, h)
        target = self.sums[domain]
        for block, shift in zip(signed, self._shifts):   # columns j go to (j + shift) mod h
            target[:, shift:] += block[:, :h - shift]
            if shift:
                target[:, :shift] += block[:, h - shift:]


class HalvesAccumulator:
    """Per-domain sums over two halves of each domain's examples, in an inner accumulator (exact
    or sketched) of 2·m slots: slot 2d + h holds half h of domain d.

    Examples of a domain alternate between the halves in the order they arrive (the k-th example
    of domain d in the round goes to half k mod 2), so the halves differ in size by one at most
    and, examples being drawn independently, are independent samples of the domain's gradient.
    """

    def __init__(self, inner):
        self.inner = inner
        self.sketched = inner.sketched
        self.num_domains = inner.counts.shape[0] // 2

    # The inner accumulator's tensors are this one's: a checkpoint or an all-reduce sees 2·m slots.
    sums = property(lambda self: self.inner.sums)
    counts = property(lambda self: self.inner.counts)
    nbytes = property(lambda self: self.inner.nbytes)

    def flops_per_add(self, grad_numel: int) -> int:
        return self.inner.flops_per_add(grad_numel)

    def tensors(self) -> list[torch.Tensor]:
        return self.inner.tensors()

    def route(self, domain_ids: torch.Tensor) -> torch.Tensor:
        seen = self.inner.counts.view(-1, 2).sum(1)                     # examples per domain so far
        onehot = torch.nn.functional.one_hot(domain_ids, self.num_domains)
        before_in_batch = (onehot.cumsum(0) - onehot)[torch.arange(domain_ids.numel()), domain_ids]
        return 2 * domain_ids + (seen[domain_ids] + before_in_batch) % 2

    def add(self, slot: int, grad: torch.Tensor) -> None:
        self.inner.add(slot, grad)

    def add_counts(self, slot_ids: torch.Tensor) -> None:
        self.inner.add_counts(slot_ids)

    def snapshot(self) -> DomainGradients:
        slots = self.inner.snapshot()
        m = self.num_domains
        half_sums = slots.sums.reshape(m, 2, -1).transpose(1, 0, 2)      # (2, m, D)
        half_counts = slots.counts.reshape(m, 2).T                        # (2, m)
        return DomainGradients(sums=half_sums[0] + half_sums[1], counts=half_counts.sum(0),
                               half_sums=np.ascontiguousarray(half_sums), half_counts=np.ascontiguousarray(half_counts))

    def reset(self) -> None:
        self.inner.reset()


def exact_bytes(num_domains: int, shape: tuple[int, int]) -> int:
    return num_domains * shape[0] * shape[1] * BYTES_PER_FLOAT


def make_accumulator(num_domains: int, shape: tuple[int, int], device, budget_mib: float, seed: int = 0,
                     halves: bool = False, mode: str = "auto"):
    """For a V × h head: the exact accumulator if its m·V·h floats fit in `budget_mib`, else the
    largest sketch that does (`mode` "exact" refuses instead, "sketched" sketches even when the
    exact sums fit); a MixbenchError in one line when nothing asked for fits. With `halves`, the
    same over 2·m slots, wrapped as a HalvesAccumulator."""
    if halves:
        return HalvesAccumulator(make_accumulator(2 * num_domains, shape, device, budget_mib, seed, mode=mode))
    shape = tuple(shape)
    budget = budget_mib * MIB
    fits = exact_bytes(num_domains, shape) <= budget
    if mode == "exact" and not fits:
        raise MixbenchError(f"exact per-domain gradient sums for {num_domains} domains at a {shape[0]} × {shape[1]} "
                            f"head need {exact_bytes(num_domains, shape) / MIB:.0f} MiB, over --tap-memory "
                            f"{budget_mib:g}: raise it, or let them be sketched (--tap-sums auto)")
    if fits and mode != "sketched":
        return ExactAccumulator(num_domains, shape, device)
    rows = int(budget // (num_domains * shape[1] * BYTES_PER_FLOAT))
    if rows < MIN_SKETCH_ROWS:
        need = num_domains * MIN_SKETCH_ROWS * shape[1] * BYTES_PER_FLOAT / MIB
        raise MixbenchError(f"--tap-memory {budget_mib:g} MiB is too small for {num_domains} domains at a "
                            f"{shape[0]} × {shape[1]} head: a sketch needs at least {need:.1f} MiB "
                            f"(exact sums {exact_bytes(num_domains, shape) / MIB:.0f} MiB)")
    if fits:   # sketched by choice: an eighth of the rows, or the sketch would save nothing
        rows = min(rows, max(MIN_SKETCH_ROWS, shape[0] // 8))
    return SketchedAccumulator(num_domains, shape, min(rows, shape[0] - 1), device, seed=seed)
