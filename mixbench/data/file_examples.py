"""A data file's rows as examples (see mixbench/data/datafile.py for what each field choice means):
each row's fields checked, the eval rows chosen, the rows counted per domain and split, and the
content hashed into the task's version.

Bad input, which says a choice is wrong, stops the load with one line naming the file, the row and
the field: a field the file does not have, a text that is not a string (a number, a list), a row
whose domain is empty, an eval domain with no training rows. A row that is merely incomplete
(malformed JSON, a text missing or empty, no split value, no picture) is skipped and counted, with
one warning per file, under the tolerance of mixbench.data.rows (5 % of the rows, at most 50; more
refuses the file). Text that is not valid Unicode is replaced by U+FFFD, and counted.

The version is a hash of what the runs see, not of the file's bytes: the field choices, then
every example kept (its split, domain, prompt, response and picture), in order. The same rows as
JSONL, CSV or Parquet are one version; a changed row or another choice of field is another. The
examples of a file are kept for this process, keyed by the choices and the files' sizes and times,
so `info()` (the version) and `load()` read it once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mixbench.data.datafile import DEFAULT_EVAL_FRACTION, DEFAULT_SPLIT_FIELD, DataFile
from mixbench.data.images import CacheKey, load_images
from mixbench.data.rows import BadRows, repair_text
from mixbench.data.tables import Malformed, Table, open_table
from mixbench.task import Example, TaskDataError

log = logging.getLogger(__name__)

NO_DOMAIN = "all"                       # the one domain of a file read without --domain-field
TRAIN, EVAL = "train", "eval"
SPLIT_VALUES = {"train": TRAIN, "eval": EVAL, "validation": EVAL}   # a split field's values, lower-cased
SHOWN_DOMAINS = 8                       # the summary line lists this many domains' counts


class _Skip(Exception):
    """The row is incomplete: skipped and counted (the reason is the message)."""


@dataclass(frozen=True)
class FileExamples:
    """The examples of a data file and what reading it found."""

    train: list[Example]
    eval: list[Example]
    version: str
    rows: int                    # rows examined, in the file and an eval file
    skipped: int                 # incomplete rows skipped, and pictures that did not decode
    left_out: int                # rows of another split (test, ...): never read as train or eval
    split: str                   # how the eval rows were chosen, in words
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)   # domain -> (train rows, eval rows)

    def summary(self, spec: DataFile) -> str:
        """One line: the file, its rows, and the rows per domain and split."""
        domains = f"{len(self.counts)} domains of {spec.domain_field!r}" if spec.domain_field else "one domain"
        shown = ", ".join(f"{d} {t}/{e}" for d, (t, e) in list(self.counts.items())[:SHOWN_DOMAINS])
        more = f", ... {len(self.counts) - SHOWN_DOMAINS} more" if len(self.counts) > SHOWN_DOMAINS else ""
        extra = "".join(f", {n} {what}" for n, what in ((self.skipped, "skipped"), (self.left_out, "left out"))
                        if n)
        return (f"{spec.path}: {self.rows} rows{extra}; {len(self.train)} train, {len(self.eval)} eval "
                f"({self.split}) in {domains} (train/eval: {shown}{more})")


def read_examples(spec: DataFile, *, image_size: int = 32, progress: bool | None = None) -> FileExamples:
    """The examples of `spec`'s file (and eval file), read once per process while the files stay
    as they are. `image_size`: the side pictures are decoded to (image-text only)."""
    key = (spec, image_size if spec.image_field else None, _state(spec.path), _state(spec.eval_file))
    if key not in _READ:
        _READ.clear()   # one file's examples at a time: a process reads one task
        _READ[key] = _Reader(spec, image_size, progress).read()
        log.info("%s", _READ[key].summary(spec))
    return _READ[key]


_READ: dict[tuple, FileExamples] = {}


def check_eval_rows(examples: FileExamples, spec: DataFile, per_domain: int) -> None:
    """Every domain has at least `per_domain` eval rows (a run scores that many of each)."""
    for domain, (_, n_eval) in examples.counts.items():
        if n_eval < per_domain:
            what = f"domain {domain!r} of field {spec.domain_field!r} has" if spec.domain_field else "the file has"
            raise TaskDataError(f"{spec.path}: {what} {n_eval} eval row(s), fewer than --eval-per-domain "
                                f"{per_domain}; lower --eval-per-domain, or give it more eval rows")


@dataclass
class _Row:
    split: str
    domain: str
    prompt: str
    response: str
    image: str | tuple[str, bytes] | None   # a picture's path or (name, bytes)
    digest: bytes                           # of the text and picture: the hash split and the version


class _Reader:
    def __init__(self, spec: DataFile, image_size: int, progress: bool | None):
        self.spec, self.image_size, self.progress = spec, image_size, progress
        self.rows = self.skipped = self.left_out = 0
        self.first_left_out: str | None = None

    def read(self) -> FileExamples:
        spec = self.spec
        table = open_table(spec.path)
        fields = table.fields()
        split_field = spec.split_field
        if split_field is None and spec.eval_file is None and spec.eval_fraction is None \
                and DEFAULT_SPLIT_FIELD in fields:
            split_field = DEFAULT_SPLIT_FIELD
        fraction = spec.eval_fraction if spec.eval_fraction is not None else DEFAULT_EVAL_FRACTION
        if split_field is not None:
            split = f"by field {split_field!r}"
        elif spec.eval_file is not None:
            split = f"eval rows from {spec.eval_file}"
        else:
            split = f"{fraction:g} of the rows held out by a hash of their text"
        rows = self._rows(table, fields, split_field, None if split_field else TRAIN if spec.eval_file else fraction)
        if spec.eval_file is not None:
            eval_table = open_table(spec.eval_file)
            rows += self._rows(eval_table, eval_table.fields(), None, EVAL)
        if self.left_out:
            log.warning("%s: %d rows of a split other than train or eval left out (first: %s)", spec.path,
                        self.left_out, self.first_left_out)
        # The choices as they were applied: a split field named or found by default is one choice.
        choices = {**{k: getattr(spec, k) for k in DataFile.field_choices()}, "split_field": split_field,
                   "eval": "file" if spec.eval_file else None if split_field else fraction}
        digest = hashlib.sha256(json.dumps(choices, sort_keys=True).encode())
        for row in rows:
            digest.update(_framed(row.split, row.domain) + row.digest)
        version = "sha-" + digest.hexdigest()[:12]
        train, evaluation = self._examples(rows, version)
        self._check_domains(train, evaluation)
        _warn_repeats(spec, rows)
        train_n, eval_n = Counter(e.domain for e in train), Counter(e.domain for e in evaluation)
        counts = {d: (train_n[d], eval_n[d]) for d in sorted(train_n)}
        return FileExamples(train=train, eval=evaluation, version=version, rows=self.rows, skipped=self.skipped,
                            left_out=self.left_out, split=split, counts=counts)

    # -- one file's rows ---------------------------------------------------------------------------
    def _rows(self, table: Table, fields: list[str], split_field: str | None,
              side: str | float | None) -> list[_Row]:
        """The complete rows of `table`. With a `split_field` each row's own value decides its side;
        else `side`: TRAIN or EVAL for every row, or the share held out for eval by hash."""
        spec = self.spec
        wanted = [getattr(spec, k) for k in DataFile.field_choices() if k != "split_field" and getattr(spec, k)]
        wanted += [split_field] if split_field else []
        for name in wanted:
            if name not in fields:
                shown = ", ".join(map(repr, fields[:20])) + (", ..." if len(fields) > 20 else "")
                raise TaskDataError(f"{table.path}: no field {name!r} (its fields: {shown or 'none'})")
        bad = BadRows(str(table.path), unit=table.unit, warn_each=False)
        rows, examined = [], 0
        for chunk in table.chunks(wanted, progress=self.progress):
            for position, record in chunk:
                examined += 1
                if isinstance(record, Malformed):
                    bad.add(position, record.reason)
                    continue
                record, repaired = repair_text(record)
                if repaired:
                    bad.repair(position)
                try:
                    row = self._row(table, position, record, split_field, side)
                except _Skip as skip:
                    bad.add(position, str(skip))
                    continue
                if row is not None:
                    rows.append(row)
        bad.finish(examined)
        self.rows += examined
        self.skipped += bad.count
        return rows

    def _row(self, table: Table, position: int, record: dict, split_field: str | None,
             side: str | float | None) -> _Row | None:
        spec = self.spec
        where = f"{table.path}: {table.unit} {position}"
        if spec.text_field is not None:
            prompt, response = "", _text(record, spec.text_field, where)
        else:
            prompt = _text(record, spec.prompt_field, where, required=False)
            response = _text(record, spec.response_field, where)
        domain = _domain(record, spec.domain_field, where) if spec.domain_field else NO_DOMAIN
        image = _image(record, spec.image_field, where, table.path.parent) if spec.image_field else None
        digest = hashlib.blake2b(_framed(prompt, response) + _picture_digest(image), digest_size=16).digest()
        if split_field is not None:
            value = record.get(split_field)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise _Skip(f"no {split_field!r}")
            split = SPLIT_VALUES.get(str(value).strip().lower())
            if split is None:
                self.left_out += 1
                self.first_left_out = self.first_left_out or f"{where}, {split_field!r} is {value!r}"
                return None
        elif isinstance(side, str):
            split = side
        else:   # a share of the rows, by hash: the same row is on the same side in any file, any run
            split = EVAL if int.from_bytes(digest[:8], "big") / 2**64 < side else TRAIN
        return _Row(split, domain, prompt, response, image, digest)

    # -- after the rows ------------------------------------------------------------------------------
    def _examples(self, rows: list[_Row], version: str) -> tuple[list[Example], list[Example]]:
        """(train, eval) examples of the rows; for image-text each picture decoded (cached by the
        task's version), one that does not decode skipped and counted."""
        images = None
        if self.spec.image_field:
            sources = [row.image for row in rows]
            decoded = load_images(sources, self.image_size, what=self.spec.path, progress=self.progress,
                                  cache=CacheKey(self.spec.label, version))
            images = dict(zip(decoded.index.tolist(), decoded.images))
            self.skipped += len(rows) - len(images)
        train, evaluation = [], []
        for i, row in enumerate(rows):
            if images is not None and i not in images:
                continue
            example = Example(prompt=row.prompt, response=row.response, domain=row.domain,
                              image=None if images is None else images[i])
            (train if row.split == TRAIN else evaluation).append(example)
        return train, evaluation

    def _check_domains(self, train: list[Example], evaluation: list[Example]) -> None:
        spec = self.spec
        if not train:
            raise TaskDataError(f"{spec.path}: no train rows ({self.rows} rows read, {self.skipped} skipped, "
                                f"{self.left_out} left out)")
        if not evaluation:
            raise TaskDataError(f"{spec.path}: no eval rows; mark some with a split field (train/eval), or give "
                                "--eval-file or a larger --eval-fraction")
        unseen = sorted({e.domain for e in evaluation} - {e.domain for e in train})
        if unseen:
            raise TaskDataError(f"{spec.path}: domain {unseen[0]!r} of field {spec.domain_field!r} has eval rows but "
                                f"no train rows" + (f" ({len(unseen) - 1} more such domains)" if len(unseen) > 1
                                                    else ""))


def _text(record: dict, name: str, where: str, *, required: bool = True) -> str:
    value = record.get(name)
    if value is None:
        if required:
            raise _Skip(f"no {name!r}")
        return ""
    if not isinstance(value, str):
        raise TaskDataError(f"{where}, field {name!r}: {_kind(value)}, not text")
    if required and not value.strip():
        raise _Skip(f"empty {name!r}")
    return value


def _domain(record: dict, name: str, where: str) -> str:
    value = record.get(name)
    if isinstance(value, (list, dict, bytes)):
        raise TaskDataError(f"{where}, field {name!r}: {_kind(value)}, not a domain name")
    domain = "" if value is None else str(value).strip()
    if not domain:
        raise TaskDataError(f"{where}, field {name!r}: empty domain")
    return domain


def _image(record: dict, name: str, where: str, folder: Path) -> str | tuple[str, bytes]:
    value = record.get(name)
    if value is None or value == "":
        raise _Skip(f"no picture in {name!r}")
    if isinstance(value, dict) and isinstance(value.get("bytes"), bytes):   # datasets' Image, as stored
        return (value.get("path") or where, value["bytes"])
    if isinstance(value, dict) and isinstance(value.get("path"), str):
        value = value["path"]
    if not isinstance(value, str):
        raise TaskDataError(f"{where}, field {name!r}: {_kind(value)}, not a picture's path")
    return str(folder / value)   # an absolute path stays as it is


def _picture_digest(image: str | tuple[str, bytes] | None) -> bytes:
    if image is None:
        return b""
    if isinstance(image, tuple):
        return hashlib.blake2b(image[1], digest_size=16).digest()
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(image, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.digest()
    except OSError as exc:
        raise _Skip(f"cannot read its picture {image} ({exc.strerror or exc})") from None


def _warn_repeats(spec: DataFile, rows: list[_Row]) -> None:
    train = {row.digest for row in rows if row.split == TRAIN}
    repeats = sum(row.digest in train for row in rows if row.split == EVAL)
    if repeats:
        log.warning("%s: %d eval rows repeat a train row's text: their eval loss is partly memorised", spec.path,
                    repeats)


def _framed(*texts: str) -> bytes:
    """Texts joined without ambiguity: each prefixed by its length."""
    out = b""
    for text in texts:
        raw = text.encode("utf-8")
        out += len(raw).to_bytes(8, "little") + raw
    return out


def _kind(value) -> str:
    """`value` and its type, for a message: "3 is an int"."""
    shown, kind = repr(value), type(value).__name__
    return f"{shown[:40] + '...' if len(shown) > 40 else shown} is {'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _state(path: str | None) -> tuple | None:
    """What changes when a file (or a saved dataset folder) does: its files' sizes and times."""
    if path is None:
        return None
    target = Path(path)
    try:
        files = [target] if not target.is_dir() else sorted(p for p in target.rglob("*") if p.is_file())
        return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    except OSError:
        return ("unreadable", path)
