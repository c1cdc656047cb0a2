"""Robust reading of data files: skip and report bad rows, refuse a file that is mostly bad.

Real data files have the odd broken line (a truncated write, a stray log line, a record missing a
field). Loading should not die on the first one, nor silently load a file that is mostly garbage.
The rule here, per file:

* a bad row (not JSON, not a JSON object, not UTF-8, a required field missing, or refused by the
  caller's `parse`) is skipped with a logged warning that names ``file:line`` and the reason;
* if more rows are bad than tolerated the whole file is refused with a one-line `TaskDataError`.
  Tolerated: 5 % of the rows examined, at most 50, and always at least one.

Domains that end up with no examples are dropped with a warning (`drop_empty_domains`); if every
domain is empty that is an error too.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from mixbench.task import TaskDataError

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BAD_ROWS = 50
MAX_BAD_FRACTION = 0.05


class RowError(ValueError):
    """Raised by a `parse` callback: the row is unusable for the reason given (skipped, counted)."""


class BadRows:
    """Counts the bad rows of one file, warns about each, and refuses the file when there are too many."""

    def __init__(self, where: str, *, max_bad: int = MAX_BAD_ROWS, max_bad_fraction: float = MAX_BAD_FRACTION,
                 unit: str = "line"):
        self.where = where
        self.max_bad = max_bad
        self.max_bad_fraction = max_bad_fraction
        self.unit = unit          # "line" for JSONL, "row" for tables, "instance" for task files
        self.count = 0
        self.first: tuple[Any, str] | None = None

    def location(self, position) -> str:
        return f"{self.where}:{position}" if self.unit == "line" else f"{self.where}: {self.unit} {position}"

    def add(self, position, reason: str) -> None:
        self.count += 1
        if self.first is None:
            self.first = (position, reason)
        log.warning("%s: %s; skipped", self.location(position), reason)

    def tolerated(self, examined: int) -> int:
        return max(1, min(self.max_bad, int(self.max_bad_fraction * examined)))

    def check(self, examined: int) -> None:
        """Raise if more than the tolerated number of the `examined` rows were bad."""
        allowed = self.tolerated(examined)
        if self.count > allowed:
            position, reason = self.first
            raise TaskDataError(
                f"{self.where}: {self.count} of {examined} {self.unit}s are malformed or incomplete, more than "
                f"the {allowed} tolerated (first at {self.location(position)}: {reason}); is it the right file?"
            )


def parse_jsonl(
    data: bytes | str,
    where: str,
    parse: Callable[[dict], T | None] | None = None,
    *,
    required: Iterable[str] = (),
    limit: int | None = None,
    seed: int | Iterable[int] | None = None,
    max_bad: int = MAX_BAD_ROWS,
    max_bad_fraction: float = MAX_BAD_FRACTION,
) -> list[T]:
    """Records of a JSONL text, each passed through `parse` (None from `parse` drops a row quietly).

    `where` names the file in messages. With `limit`, rows are examined in a random order seeded by
    `seed` (file order without one) until `limit` rows are accepted: a cheap, reproducible sample
    of a big file. The result is always in file order.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
        data = data[3:]
    lines = data.split(b"\n")
    numbered = [i for i, raw in enumerate(lines) if raw.strip()]
    if limit is not None and seed is not None:
        order = np.random.default_rng(_seed_sequence(seed)).permutation(len(numbered))
        numbered = [numbered[i] for i in order]
    required = tuple(required)
    bad = BadRows(where, max_bad=max_bad, max_bad_fraction=max_bad_fraction)
    accepted: list[tuple[int, T]] = []
    examined = 0
    for i in numbered:
        if limit is not None and len(accepted) >= limit:
            break
        examined += 1
        try:
            record = json.loads(lines[i].decode("utf-8"))
        except UnicodeDecodeError:
            bad.add(i + 1, "not valid UTF-8")
            continue
        except json.JSONDecodeError as exc:
            bad.add(i + 1, f"malformed JSON ({exc.msg} at column {exc.colno})")
            continue
        result = _accept(record, parse, required, bad, i + 1)
        if result is not _SKIP:
            accepted.append((i, result))
    bad.check(examined)
    accepted.sort(key=lambda pair: pair[0])
    return [value for _, value in accepted]


def read_jsonl(path: str | Path, parse: Callable[[dict], T | None] | None = None, **options) -> list[T]:
    """`parse_jsonl` on a file; the file's path names it in messages."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TaskDataError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_jsonl(data, str(path), parse, **options)


def accept_rows(rows: Sequence[Any], where: str, parse: Callable[[dict], T | None] | None = None, *,
                required: Iterable[str] = (), unit: str = "row", start: int = 0, order: Iterable[int] | None = None,
                limit: int | None = None, max_bad: int = MAX_BAD_ROWS,
                max_bad_fraction: float = MAX_BAD_FRACTION) -> list[T]:
    """The same checks for rows that are already decoded (a parquet table, a JSON list).

    Rows are examined in `order` (indices into `rows`; all in turn without one) until `limit` are
    accepted; messages number them from `start`. The result is in row order.
    """
    bad = BadRows(where, max_bad=max_bad, max_bad_fraction=max_bad_fraction, unit=unit)
    required = tuple(required)
    accepted, examined = [], 0
    for i in (range(len(rows)) if order is None else order):
        if limit is not None and len(accepted) >= limit:
            break
        examined += 1
        result = _accept(rows[i], parse, required, bad, i + start)
        if result is not _SKIP:
            accepted.append((i, result))
    bad.check(examined)
    accepted.sort(key=lambda pair: pair[0])
    return [value for _, value in accepted]


_SKIP = object()


def _accept(record, parse, required, bad: BadRows, position):
    if not isinstance(record, dict):
        bad.add(position, f"not a JSON object (a {type(record).__name__})")
        return _SKIP
    missing = next((key for key in required if record.get(key) is None), None)
    if missing is not None:
        bad.add(position, f"missing required field {missing!r}")
        return _SKIP
    if parse is None:
        return record
    try:
        result = parse(record)
    except (RowError, KeyError, TypeError, ValueError) as exc:
        reason = f"missing required field {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
        bad.add(position, reason or type(exc).__name__)
        return _SKIP
    return _SKIP if result is None else result


def drop_empty_domains(groups: Mapping[str, list[T]], what: str) -> dict[str, list[T]]:
    """The non-empty groups; each empty one is reported and dropped. `what` names the task in messages."""
    kept = {}
    for name, items in groups.items():
        if items:
            kept[name] = items
        else:
            log.warning("%s: domain %r has no examples after filtering; dropped", what, name)
    if not kept:
        raise TaskDataError(f"{what}: no domain has any usable example (see the warnings above)")
    return kept


def _seed_sequence(seed) -> list[int]:
    return [int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]


def stable_hash(text: str) -> int:
    """A hash of a string that is the same in every process (Python's hash() is salted)."""
    return zlib.crc32(text.encode("utf-8"))
