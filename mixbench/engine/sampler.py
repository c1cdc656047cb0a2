"""The one sampler: batches drawn by a mixture over domains, for mixbench's trainer and for any
map-style dataset with a domain label per example (the integrations hand it to a DataLoader or a
Trainer): rank-aware, its weights settable between steps, and exactly resumable.

The draws are organised in *units*: one optimiser step's examples over every process and every
micro-batch, `batch_size × world_size × micro_batches` of them. Unit u is drawn as

    counts ~ Multinomial(unit size, p_u)         p_u: the mixture in force for unit u
    domain d's counts[d] examples = the next ones in domain d's stream
    the unit shuffled, then cut into micro-batches: micro-batch j of rank r is chunk j·W + r

from a generator seeded by (seed, u) alone, so every process draws the same unit and keeps its
own chunks: the ranks' slices are disjoint, and no example occurs twice in a unit unless a
domain holds fewer examples than its share of one unit. Domain d's stream is a series of shuffled
passes over its examples: no example repeats before every example of the domain has been drawn,
and a mixture change only changes how fast each stream is read, never restarts one (nothing lost,
nothing drawn twice). Where a pass ends inside a unit, the examples already in the unit are moved
to the end of the next pass, so the unit still holds each example once.

mixbench's trainer draws each step's unit itself, with the mixture it trains on
(`draw_unit(weights)`): a strategy's probe steps on a mixture of their own draw from the same
streams. A loop that iterates the sampler instead follows the schedule below.

A data loader reads ahead (a prefetching worker, accelerate's one-batch look-ahead), so a new
mixture is given with the unit it starts at (`set_mixture(p, from_unit)`), never "now": the same
units get the same mixture however far a loader has read, which is what makes a resumed or a
multi-process run draw what an uninterrupted single-process one draws. A mixture set for a unit
already drawn is refused. `state_dict(unit)` is the sampler as it was before drawing `unit` (the
sampler keeps the few snapshots a loader's look-ahead needs).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from mixbench.errors import MixbenchError

STATE_FORMAT = 1
# Snapshots kept for state_dict(unit): more than any loader reads ahead (workers × prefetch + 1).
MAX_SNAPSHOTS = 256
# The two families of generators: one per unit (domain counts and the shuffle), one per pass of a
# domain (its order). Spawn keys keep every (family, index) stream independent.
_UNIT, _PASS = 0, 1


class SamplerError(MixbenchError, ValueError):
    """Settings or a state the sampler cannot work with; the message names the problem."""


class LookaheadError(SamplerError):
    """A mixture was set for a unit the loader has already drawn."""


@dataclass
class _Stream:
    """Where domain d's stream is: pass number, position in it, and the examples (positions in
    the domain) moved to the end of this pass because the unit that began it already held them."""

    pass_index: int = 0
    offset: int = 0
    moved: tuple[int, ...] = ()

    def copy(self) -> _Stream:
        return _Stream(self.pass_index, self.offset, self.moved)


class MixtureSampler(torch.utils.data.Sampler):
    """Yields dataset indices following a mixture over the domains of `domain_ids`.

    domain_ids     (n,) the domain (0..num_domains-1) of each example of the dataset
    batch_size     examples per micro-batch on one process
    world_size     processes that share each unit (data-parallel ranks)
    rank           the process whose chunks to yield; None yields every rank's chunk in turn, for
                   a loader that hands consecutive batches to consecutive ranks itself
                   (accelerate's, inside transformers.Trainer)
    micro_batches  micro-batches per optimiser step (gradient accumulation)
    units_per_epoch  units one pass of `iter()` yields (default: enough to cover the dataset once)

    `len()` is the number of indices one `iter()` yields; each `iter()` continues where the last
    stopped (the sampler keeps its own position; `set_epoch` is accepted and ignored).
    `loader_skips_on_resume`: the loader skips the part of the epoch already trained when a run
    resumes (transformers.Trainer without ignore_data_skip); the first `iter()` after
    `load_state_dict` then begins with that many stand-in units.
    """

    def __init__(self, domain_ids, num_domains: int, *, batch_size: int, world_size: int = 1,
                 rank: int | None = 0, micro_batches: int = 1, seed: int = 0, units_per_epoch: int | None = None,
                 loader_skips_on_resume: bool = False):
        for name, value in (("batch_size", batch_size), ("world_size", world_size), ("micro_batches", micro_batches)):
            if not isinstance(value, int) or value < 1:
                raise SamplerError(f"{name} must be a positive integer, got {value!r}")
        if rank is not None and not 0 <= rank < world_size:
            raise SamplerError(f"rank must lie in [0, {world_size}), got {rank}")
        ids = domain_id_array(domain_ids, num_domains)
        self.pools = [np.flatnonzero(ids == d) for d in range(num_domains)]
        empty = [d for d, pool in enumerate(self.pools) if pool.size == 0]
        if empty:
            raise SamplerError(f"domain(s) {empty} have no training examples")
        self.domain_ids = ids
        self.num_domains, self.seed = num_domains, int(seed)
        self.batch_size, self.world_size, self.rank, self.micro_batches = batch_size, world_size, rank, micro_batches
        self.unit_size = batch_size * world_size * micro_batches
        self.units_per_epoch = units_per_epoch or max(1, math.ceil(ids.size / self.unit_size))
        self._schedule: list[tuple[int, np.ndarray]] = [(0, np.full(num_domains, 1.0 / num_domains))]
        self._streams = [_Stream() for _ in range(num_domains)]
        self._next_unit = 0
        self._snapshots: dict[int, list[_Stream]] = {}
        self._orders: dict[tuple[int, int, tuple[int, ...]], np.ndarray] = {}
        self.loader_skips_on_resume = loader_skips_on_resume
        self._skip_next_iter = 0

    # -- the mixture --------------------------------------------------------------------------

    @property
    def units_drawn(self) -> int:
        """Units drawn so far (the next one drawn is this number)."""
        return self._next_unit

    def set_mixture(self, weights, from_unit: int) -> None:
        """Units from `from_unit` on are drawn by `weights` (a Mixture or m probabilities)."""
        p = _probabilities(weights, self.num_domains)
        if from_unit < self._next_unit:
            raise LookaheadError(f"the mixture for step {from_unit} came after the data loader had already drawn "
                                 f"{self._next_unit} steps: it reads further ahead than expected (set "
                                 f"lookahead_steps to at least {self._next_unit - from_unit} more, or use fewer "
                                 f"prefetching workers)")
        self._schedule = [(u, w) for u, w in self._schedule if u < from_unit] + [(int(from_unit), p)]

    def mixture_for(self, unit: int) -> np.ndarray:
        return next(w for u, w in reversed(self._schedule) if u <= unit)

    # -- drawing ------------------------------------------------------------------------------

    def __len__(self) -> int:
        per_unit = self.unit_size if self.rank is None else self.batch_size * self.micro_batches
        return self.units_per_epoch * per_unit

    def set_epoch(self, epoch: int) -> None:
        """Accepted for loaders that call it; the sampler keeps its own position across epochs."""

    def __iter__(self) -> Iterator[int]:
        # After a resume, a loader that skips the batches of the epoch already trained (the
        # Trainer does, unless ignore_data_skip) gets stand-ins for them: the sampler itself
        # restarts at the step it stopped, so its position in the epoch stays the Trainer's.
        skipped, self._skip_next_iter = self._skip_next_iter, 0
        per_unit = self.unit_size if self.rank is None else self.batch_size * self.micro_batches
        # Index len(dataset) fails loudly if a stand-in is ever fetched instead of skipped.
        yield from [int(self.domain_ids.size)] * (skipped * per_unit)
        for _ in range(self.units_per_epoch - skipped):
            unit = self.draw_unit()
            yield from self._share(unit).tolist()

    def draw_unit(self, weights=None) -> np.ndarray:
        """The next unit: (unit size,) dataset indices, in micro-batch and rank order, drawn by
        `weights` (a Mixture or m probabilities) if given, else by the mixture scheduled for it."""
        p = self.mixture_for(self._next_unit) if weights is None else _probabilities(weights, self.num_domains)
        u = self._next_unit
        self._snapshots[u] = [s.copy() for s in self._streams]
        if len(self._snapshots) > MAX_SNAPSHOTS:
            del self._snapshots[min(self._snapshots)]
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(_UNIT, u)))
        counts = rng.multinomial(self.unit_size, p)
        picks = np.concatenate([self.pools[d][self._take(d, int(c))] for d, c in enumerate(counts)])
        self._next_unit = u + 1
        return picks[rng.permutation(picks.size)]

    def _share(self, unit: np.ndarray) -> np.ndarray:
        if self.rank is None:
            return unit
        B, W = self.batch_size, self.world_size
        chunks = unit.reshape(self.micro_batches, W, B)   # micro-batch j of rank r is chunk j·W + r
        return chunks[:, self.rank].reshape(-1)

    def _take(self, d: int, count: int) -> np.ndarray:
        """The next `count` positions of domain d's stream, each once unless the domain is smaller."""
        stream, size = self._streams[d], self.pools[d].size
        taken: list[np.ndarray] = []
        need = count
        while need > 0:
            order = self._order(d, stream)
            part = order[stream.offset:stream.offset + need]
            if part.size == 0:   # only a stream past its domain's end reads nothing; load_state_dict refuses one
                raise SamplerError(f"domain {d}'s stream is at position {stream.offset} of {size} examples")
            taken.append(part)
            stream.offset += part.size
            need -= part.size
            if stream.offset == size:   # the pass ends: the next one starts with what the unit lacks
                held = np.concatenate(taken)
                moved = tuple(held.tolist()) if 0 < held.size < size else ()
                self._streams[d] = stream = _Stream(stream.pass_index + 1, 0, moved)
        return np.concatenate(taken) if taken else np.empty(0, dtype=np.int64)

    def _order(self, d: int, stream: _Stream) -> np.ndarray:
        """Pass `stream.pass_index` of domain d: a seeded shuffle, the `moved` examples put last."""
        key = (d, stream.pass_index, stream.moved)
        order = self._orders.get(key)
        if order is None:
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(_PASS, d, stream.pass_index)))
            order = rng.permutation(self.pools[d].size)
            if stream.moved:
                last = np.isin(order, np.asarray(stream.moved))
                order = np.concatenate([order[~last], np.asarray(stream.moved, dtype=order.dtype)])
            # Only the current pass of each domain is ever read again.
            self._orders = {k: v for k, v in self._orders.items() if k[0] != d}
            self._orders[key] = order
        return order

    # -- resume -------------------------------------------------------------------------------

    def state_dict(self, unit: int | None = None) -> dict:
        """The sampler as it was before drawing `unit` (default: now). Plain data and arrays."""
        unit = self._next_unit if unit is None else int(unit)
        if unit == self._next_unit:
            streams = self._streams
        elif unit in self._snapshots:
            streams = self._snapshots[unit]
        else:
            raise SamplerError(f"the sampler has no state for step {unit} (it has drawn {self._next_unit} steps "
                                   f"and keeps the last {MAX_SNAPSHOTS})")
        start = max(i for i, (u, _) in enumerate(self._schedule) if u <= unit)
        return {
            "format": STATE_FORMAT, "seed": self.seed, "unit": unit, "unit_size": self.unit_size,
            "domain_sizes": [int(p.size) for p in self.pools],
            "streams": [[s.pass_index, s.offset, list(s.moved)] for s in streams],
            "schedule": [[u, w.copy()] for u, w in self._schedule[start:]],
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict()`: the next unit drawn is the one it was taken before. A
        state that does not fit this sampler, or that no sampler could have saved (a stream past
        its domain's end, say), is a SamplerError naming what is wrong; the sampler is unchanged."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise SamplerError(f"the sampler state is of format {found!r}, not {STATE_FORMAT}")
        try:
            mine = {"seed": self.seed, "unit_size": self.unit_size, "domain_sizes": [int(p.size) for p in self.pools]}
            for key, value in mine.items():
                if list(np.atleast_1d(state[key])) != list(np.atleast_1d(value)):
                    raise SamplerError(f"the saved sampler state has {key} {state[key]}, this run has {value} "
                                       f"(resume with the same dataset, seed and batch sizes)")
            unit = _whole(state["unit"], "its step")
            streams = [self._saved_stream(d, entry) for d, entry in enumerate(_entries(state["streams"],
                                                                                      self.num_domains))]
            schedule = [(_whole(u, "a mixture's first step"), _probabilities(w, self.num_domains))
                        for u, w in state["schedule"]]
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SamplerError):
                raise
            raise SamplerError(f"the saved sampler state is damaged ({type(exc).__name__}: {exc})") from None
        if not schedule or schedule[0][0] > unit or any(a[0] >= b[0] for a, b in zip(schedule, schedule[1:])):
            raise SamplerError("the saved sampler state is damaged: its mixtures are not scheduled from its step on")
        self._next_unit = unit
        self._streams = streams
        self._schedule = schedule
        self._snapshots.clear()
        self._orders.clear()
        self._skip_next_iter = self._next_unit % self.units_per_epoch if self.loader_skips_on_resume else 0

    def _saved_stream(self, d: int, entry) -> _Stream:
        """Domain d's stream as a state saved it, checked against the domain's size: a position past
        its end would never be read past (the draw would wait for examples that never come)."""
        pass_index, offset, moved = entry
        size = self.pools[d].size
        stream = _Stream(_whole(pass_index, f"domain {d}'s pass"), _whole(offset, f"domain {d}'s position"),
                         tuple(_whole(x, f"domain {d}'s moved examples") for x in moved))
        if stream.offset >= size:
            raise SamplerError(f"the saved sampler state is damaged: domain {d}'s stream is at position "
                               f"{stream.offset} of a domain of {size} examples")
        if len(set(stream.moved)) != len(stream.moved) or len(stream.moved) >= size or \
                any(x >= size for x in stream.moved):
            raise SamplerError(f"the saved sampler state is damaged: domain {d}'s moved examples "
                               f"{list(stream.moved)[:8]} are not examples of a domain of {size}")
        return stream


def domain_id_array(domain_ids, num_domains: int, what: str = "domain ids") -> np.ndarray:
    """`domain_ids` as (n,) int64, each an integer in [0, num_domains): floats only where they are
    whole numbers (0.7 is no domain, and int64 would make it 0), never NaN, strings or bools. A
    SamplerError names the first offending value and its position."""
    ids = np.asarray(domain_ids.detach().cpu() if hasattr(domain_ids, "detach") else domain_ids).reshape(-1)
    if ids.size == 0:
        return ids.astype(np.int64)
    kind = ids.dtype.kind
    if kind == "f":
        bad = np.flatnonzero(~np.isfinite(ids) | (ids != np.round(ids)))
        if bad.size:
            raise SamplerError(f"{what} must be whole numbers, got {ids[bad[0]].item()!r} at position {bad[0]}")
    elif kind not in "iu":
        bad = next((i for i, v in enumerate(ids.tolist()) if not _is_int(v)), 0)
        raise SamplerError(f"{what} must be integers in [0, {num_domains}), got {ids.tolist()[bad]!r} "
                           f"at position {bad}")
    out = ids.astype(np.int64)
    outside = np.flatnonzero((out < 0) | (out >= num_domains))
    if outside.size:
        raise SamplerError(f"{what} must lie in [0, {num_domains}), got {out[outside[0]]} at position {outside[0]}")
    return out


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _whole(value, what: str) -> int:
    """A count or position from a saved state: a non-negative integer (a float holding one is fine)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)) \
            or not math.isfinite(value) or value != int(value) or value < 0:
        raise SamplerError(f"the saved sampler state is damaged: {what} is {value!r}, not a count")
    return int(value)


def _entries(values, count: int) -> list:
    values = list(values)
    if len(values) != count:
        raise SamplerError(f"the saved sampler state is damaged: it has {len(values)} domain streams for "
                           f"{count} domains")
    return values


def _probabilities(weights, num_domains: int) -> np.ndarray:
    """Mixture weights as float64 probabilities that numpy's multinomial accepts."""
    p = np.asarray(getattr(weights, "weights", weights), dtype=np.float64).reshape(-1)
    if p.shape[0] != num_domains or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise SamplerError(f"a mixture over {num_domains} domains needs {num_domains} non-negative finite "
                               f"weights, got {p.tolist()}")
    return p / p.sum()

