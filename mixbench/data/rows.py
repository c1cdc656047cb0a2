"""Robust reading of data files: skip and report bad rows, refuse a file that is mostly bad.

Real data files have the odd broken line (a truncated write, a stray log line, a record missing a
field). Loading should not die on the first one, nor silently load a file that is mostly garbage.
The rule here, per file:

* a bad row (not JSON, not a JSON object, a required field missing, or refused by the caller's
  `parse`) is skipped with a logged warning that names ``file:line`` and the reason;
* if more rows are bad than tolerated the whole file is refused with a one-line `TaskDataError`.
  Tolerated: 5 % of the rows examined, at most 50, and always at least one;
* text that is not valid Unicode is repaired, not fatal: bytes that are not UTF-8, and lone
  surrogates (JSON's ``"\ud800"`` is valid JSON but no encoder takes the string it decodes to, so
  it would fail later, as a traceback, wherever the text is tokenised or hashed) become U+FFFD; the
  rows repaired are counted and reported in one warning per file.

Domains that end up with no examples are dropped with a warning (`drop_empty_domains`); if every
domain is empty that is an error too.
"""

from __future__ import annotations

import json
import logging
import re
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
REPLACEMENT = "\ufffd"
# Lone surrogates: JSON escapes of half a pair, and the bytes that are not UTF-8 as the
# "surrogateescape" decoding keeps them (U+DC80..U+DCFF). A pair JSON escapes whole decodes to one
# character, so every surrogate left in a decoded string is a lone one.
_SURROGATE = re.compile("[\ud800-\udfff]")


class RowError(ValueError):
    """Raised by a `parse` callback: the row is unusable for the reason given (skipped, counted)."""


class BadRows:
    """Counts the bad rows of one file, warns about each, and refuses the file when there are too many."""

    def __init__(self, where: str, *, max_bad: int = MAX_BAD_ROWS, max_bad_fraction: float = MAX_BAD_FRACTION,
                 unit: str = "line", warn_each: bool = True):
        self.where = where
        self.max_bad = max_bad
        self.max_bad_fraction = max_bad_fraction
        self.unit = unit          # "line" for JSONL, "row" for tables, "instance" for task files
        self.warn_each = warn_each   # False: one warning for all the skipped rows, from finish()
        self.count = 0
        self.first: tuple[Any, str] | None = None
        self.repaired = 0
        self.first_repaired: Any = None

    def location(self, position) -> str:
        return f"{self.where}:{position}" if self.unit == "line" else f"{self.where}: {self.unit} {position}"

    def add(self, position, reason: str) -> None:
        self.count += 1
        if self.first is None:
            self.first = (position, reason)
        if self.warn_each:
            log.warning("%s: %s; skipped", self.location(position), reason)

    def repair(self, position) -> None:
        """Counts a row kept with its invalid text replaced (see `repair_text`)."""
        self.repaired += 1
        if self.first_repaired is None:
            self.first_repaired = position

    def finish(self, examined: int) -> None:
        """`check`, then the warnings that were held back: the skipped rows (when not warned about
        one by one) and the repaired ones, one line each."""
        self.check(examined)
        if self.count and not self.warn_each:
            position, reason = self.first
            log.warning("%s: %d of %d %ss skipped as malformed or incomplete (first at %s: %s)", self.where,
                        self.count, examined, self.unit, self.location(position), reason)
        if self.repaired:
            log.warning("%s: %d %s(s) held text that is not valid Unicode (bytes that are not UTF-8, or lone "
                        "surrogates such as \\ud800); replaced by U+FFFD (first at %s)", self.where, self.repaired,
                        self.unit, self.location(self.first_repaired))

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
        data = data.encode("utf-8", "surrogateescape")   # a lone surrogate stays one, to be repaired per row
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
            record = parse_json_line(lines[i])
        except json.JSONDecodeError as exc:
            bad.add(i + 1, f"malformed JSON ({exc.msg} at column {exc.colno})")
            continue
        result = _accept(record, parse, required, bad, i + 1)
        if result is not _SKIP:
            accepted.append((i, result))
    bad.finish(examined)
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
    bad.finish(examined)
    accepted.sort(key=lambda pair: pair[0])
    return [value for _, value in accepted]


def parse_json_line(raw: bytes):
    """One JSONL line as JSON. Bytes that are not UTF-8 are kept as lone surrogates (the
    "surrogateescape" decoding), for `repair_text` to replace with the JSON escapes of one."""
    return json.loads(raw.decode("utf-8", "surrogateescape"))


def repair_text(value):
    """`value` with every lone surrogate in its strings replaced by U+FFFD, and whether any was.
    Strings inside lists and dicts (values, not keys) are repaired too; anything else is returned
    as it is. Cheap when there is nothing to repair: one regular-expression search per string."""
    if isinstance(value, str):
        if _SURROGATE.search(value) is None:
            return value, False
        return _SURROGATE.sub(REPLACEMENT, value), True
    if isinstance(value, dict):
        repaired = {key: repair_text(item) for key, item in value.items()}
        if not any(changed for _, changed in repaired.values()):
            return value, False
        return {key: item for key, (item, _) in repaired.items()}, True
    if isinstance(value, list):
        repaired = [repair_text(item) for item in value]
        if not any(changed for _, changed in repaired):
            return value, False
        return [item for item, _ in repaired], True
    return value, False


_SKIP = object()


def _accept(record, parse, required, bad: BadRows, position):
    if not isinstance(record, dict):
        bad.add(position, f"not a JSON object (a {type(record).__name__})")
        return _SKIP
    record, repaired = repair_text(record)
    if repaired:
        bad.repair(position)
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
