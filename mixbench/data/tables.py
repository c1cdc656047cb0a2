"""A data file's records, read a chunk at a time: JSONL, CSV or TSV, Parquet, or a Hugging Face
dataset saved with `save_to_disk`.

Only the fields asked for are kept, and only one chunk of records is held at a time, so a file
larger than memory can be read as long as what is kept of it fits: JSONL line by line, CSV through
the csv module's reader, Parquet by row batches of the wanted columns (pyarrow), a saved dataset
through its memory-mapped Arrow files (the `datasets` library, mixbench[hf]). A progress bar shows
on stderr for large files (not under --no-progress, which sets TQDM_DISABLE).

Every record comes with its position for messages: the line number in a JSONL file (what an
editor shows), else the row number counted from 1 (a CSV's header is not a row). A record that
cannot be read (malformed JSON, a CSV row with more fields than its header) comes as `Malformed`
for the caller to count and skip. Text that is not UTF-8 is decoded with "surrogateescape", so
`rows.repair_text` can replace it and count it.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mixbench.data.rows import parse_json_line
from mixbench.task import TaskDataError

CHUNK_ROWS = 10_000
PROGRESS_FROM_BYTES = 64 << 20     # a bar for files from this size...
PROGRESS_FROM_ROWS = 500_000       # ...or (Parquet, saved datasets) this many rows
# A CSV field may be a whole document; the csv module refuses fields over 128 KiB by default.
CSV_FIELD_LIMIT = 2**31 - 1

SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv",
            ".parquet": "parquet", ".pq": "parquet"}
SAVED_DATASET = ("state.json", "dataset_info.json")    # what `Dataset.save_to_disk` writes beside its Arrow files
SAVED_DATASET_DICT = "dataset_dict.json"               # ...and `DatasetDict.save_to_disk`, beside one folder a split
FORMATS = "JSONL (.jsonl, .ndjson, .json), CSV (.csv), TSV (.tsv), Parquet (.parquet) or a folder saved by a " \
          "Hugging Face dataset's save_to_disk"


@dataclass(frozen=True)
class Malformed:
    """A record that could not be read, and why."""

    reason: str


Record = tuple[int, "dict | Malformed"]    # (position, the record's wanted fields, or why it is unreadable)


@dataclass(frozen=True)
class Table:
    """One data file (or saved dataset folder) and its format."""

    path: Path
    kind: str     # "jsonl", "csv", "tsv", "parquet" or "hf"

    @property
    def unit(self) -> str:
        """What a position counts: lines of a JSONL file, rows of the others."""
        return "line" if self.kind == "jsonl" else "row"

    def fields(self) -> list[str]:
        """The file's fields: a table's columns; for JSONL, the keys of its first chunk of records."""
        return _FIELDS[self.kind](self)

    def chunks(self, fields: Sequence[str], *, chunk_rows: int | None = None,
               progress: bool | None = None) -> Iterator[list[Record]]:
        """The records, `chunk_rows` at a time (CHUNK_ROWS), each holding the `fields` it has (a
        missing one is absent, a null one None). `progress`: None shows a bar for a large file,
        False never."""
        chunk_rows = chunk_rows or CHUNK_ROWS
        with _Bar(self, progress) as bar:
            chunk: list[Record] = []
            for record in _RECORDS[self.kind](self, list(fields), bar):
                chunk.append(record)
                if len(chunk) >= chunk_rows:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk


def open_table(path: str | os.PathLike) -> Table:
    """The table at `path`; a missing file or one in no format read here is a TaskDataError."""
    path = Path(path)
    if path.is_dir():
        if (path / SAVED_DATASET_DICT).is_file():
            splits = ", ".join(sorted(p.name for p in path.iterdir() if p.is_dir())) or "none"
            raise TaskDataError(f"{path} is a saved DatasetDict (splits: {splits}): give one split as the task "
                                f"and another as --eval-file, e.g. {path / 'train'} and {path / 'test'}")
        if any((path / name).is_file() for name in SAVED_DATASET):
            return Table(path, "hf")
        raise TaskDataError(f"{path} is a folder but not a saved Hugging Face dataset (no "
                            f"{' or '.join(SAVED_DATASET)}); a data file is {FORMATS}")
    if not path.exists():
        raise TaskDataError(f"{path}: no such file")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise TaskDataError(f"{path}: {path.suffix or 'no suffix'} is not a format mixbench reads; a data file is "
                            f"{FORMATS}")
    return Table(path, kind)


# -- JSONL ---------------------------------------------------------------------------------------

def _jsonl_fields(table: Table) -> list[str]:
    keys: dict[str, None] = {}
    with _Bar(table, progress=False) as bar:   # one record at a time: none is kept
        for _, record in itertools.islice(_jsonl_records(table, [], bar), CHUNK_ROWS):
            keys.update(dict.fromkeys(record.keys() if isinstance(record, dict) else ()))
    return list(keys)


def _jsonl_records(table: Table, fields: list[str], bar) -> Iterator[Record]:
    # fields=[] (from fields()): every key, so the keys can be listed.
    with _opened(table.path) as f:
        first = True
        for number, raw in enumerate(f, 1):
            bar.update(len(raw))
            if first and raw.startswith(b"\xef\xbb\xbf"):   # a UTF-8 byte-order mark
                raw = raw[3:]
            if first and raw.lstrip().startswith(b"["):
                raise TaskDataError(f"{table.path} holds a JSON array, not JSON lines (one object a line); "
                                    "write it as JSONL, e.g. with pandas: df.to_json(path, orient='records', "
                                    "lines=True)")
            if not raw.strip():
                continue
            first = False
            try:
                record = parse_json_line(raw)
            except json.JSONDecodeError as exc:
                yield number, Malformed(f"malformed JSON ({exc.msg} at column {exc.colno})")
                continue
            if not isinstance(record, dict):
                yield number, Malformed(f"not a JSON object (a {type(record).__name__})")
                continue
            yield number, ({k: record[k] for k in fields if k in record} if fields else record)


# -- CSV and TSV ---------------------------------------------------------------------------------

def _csv_reader(f, kind: str):
    text = io.TextIOWrapper(f, encoding="utf-8-sig", errors="surrogateescape", newline="")
    csv.field_size_limit(CSV_FIELD_LIMIT)
    return csv.reader(text, delimiter="\t" if kind == "tsv" else ",")


def _csv_fields(table: Table) -> list[str]:
    with _opened(table.path) as f:
        try:
            return next(_csv_reader(f, table.kind), [])
        except csv.Error as exc:
            raise TaskDataError(f"{table.path}: cannot read its header ({exc})") from None


def _csv_records(table: Table, fields: list[str], bar) -> Iterator[Record]:
    with _opened(table.path) as f:
        reader = _csv_reader(f, table.kind)
        try:
            header = next(reader, [])
        except csv.Error as exc:
            raise TaskDataError(f"{table.path}: cannot read its header ({exc})") from None
        index = {name: i for i, name in enumerate(header)}
        wanted = [(k, index[k]) for k in (fields or header) if k in index]
        done, number = 0, 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                number += 1
                yield number, Malformed(f"not a CSV row ({exc})")
                continue
            position = f.tell()
            bar.update(position - done)
            done = position
            if not row:   # a blank line is no row
                continue
            number += 1
            if len(row) > len(header):
                yield number, Malformed(f"{len(row)} fields, {len(header)} in the header")
            else:   # a short row lacks its last fields: absent, as from a JSON object without them
                yield number, {k: row[i] for k, i in wanted if i < len(row)}


# -- Parquet ---------------------------------------------------------------------------------------

def _parquet_file(table: Table):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(table.path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a file that is not Parquet
        raise TaskDataError(f"{table.path}: not a readable Parquet file ({_first_line(exc)})") from None


def _parquet_fields(table: Table) -> list[str]:
    return list(_parquet_file(table).schema_arrow.names)


def _parquet_records(table: Table, fields: list[str], bar) -> Iterator[Record]:
    parquet = _parquet_file(table)
    bar.reset(total=parquet.metadata.num_rows)
    columns = [k for k in fields if k in parquet.schema_arrow.names] or None
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, columns=columns):
            for record in batch.to_pylist():
                number += 1
                yield number, record
            bar.update(batch.num_rows)
    except TaskDataError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file fails in pyarrow's reader, in any of its types
        raise TaskDataError(f"{table.path}: unreadable after row {number} ({_first_line(exc)})") from None


# -- a saved Hugging Face dataset ----------------------------------------------------------------

def _saved_dataset(table: Table):
    try:
        import datasets
    except ImportError:
        raise TaskDataError(f"reading {table.path}, a saved Hugging Face dataset, needs the datasets library "
                            "(pip install 'mixbench[hf]')") from None
    try:
        return datasets.load_from_disk(str(table.path))
    except Exception as exc:  # noqa: BLE001 - any failure to open it is one line
        raise TaskDataError(f"{table.path}: cannot open the saved dataset ({type(exc).__name__}: "
                            f"{_first_line(exc)})") from None


def _hf_fields(table: Table) -> list[str]:
    return list(_saved_dataset(table).column_names)


def _hf_records(table: Table, fields: list[str], bar) -> Iterator[Record]:
    import datasets

    dataset = _saved_dataset(table)
    bar.reset(total=dataset.num_rows)
    dataset = dataset.select_columns([k for k in fields if k in dataset.column_names] or dataset.column_names)
    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image):   # the stored bytes (or path), not a decoded PIL picture
            dataset = dataset.cast_column(name, datasets.Image(decode=False))
    number = 0
    for batch in dataset.iter(batch_size=CHUNK_ROWS):
        names = list(batch)
        for values in zip(*(batch[k] for k in names)):
            number += 1
            yield number, dict(zip(names, values))
        bar.update(len(batch[names[0]]) if names else 0)


_FIELDS = {"jsonl": _jsonl_fields, "csv": _csv_fields, "tsv": _csv_fields, "parquet": _parquet_fields,
           "hf": _hf_fields}
_RECORDS = {"jsonl": _jsonl_records, "csv": _csv_records, "tsv": _csv_records, "parquet": _parquet_records,
            "hf": _hf_records}


# -- plumbing ------------------------------------------------------------------------------------

class _opened:
    """The file opened for binary reading; an OSError is one line naming it."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        try:
            self.file = open(self.path, "rb")
        except OSError as exc:
            raise TaskDataError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        return self.file

    def __exit__(self, *exc):
        self.file.close()


class _Bar:
    """A tqdm bar over a file's bytes (rows, once a reader resets it to a row count), shown for
    large files only; a no-op otherwise."""

    def __init__(self, table: Table, progress: bool | None):
        size = _size(table.path)
        self.table, self.progress, self.bar = table, progress, None
        self._open(size, "B", large=size >= PROGRESS_FROM_BYTES)

    def _open(self, total: int, unit: str, *, large: bool) -> None:
        from tqdm.auto import tqdm

        # TQDM_DISABLE is read here as tqdm reads it: tqdm ignores it once `disable` is passed.
        show = (large and not os.environ.get("TQDM_DISABLE")) if self.progress is None else self.progress
        if self.bar is not None:
            self.bar.close()
        self.bar = tqdm(total=total, desc=f"reading {self.table.path.name}", unit=unit, unit_scale=True,
                        disable=not show, leave=False, file=sys.stderr)

    def reset(self, total: int) -> None:
        """Count rows instead: `total` of them."""
        self._open(total, "row", large=total >= PROGRESS_FROM_ROWS or _size(self.table.path) >= PROGRESS_FROM_BYTES)

    def update(self, n: int) -> None:
        self.bar.update(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


def _size(path: Path) -> int:
    """Bytes of a file, or of the files in a folder (a saved dataset)."""
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size
    except OSError:
        return 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
