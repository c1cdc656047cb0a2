"""Content digests: a file mixbench trusts later carries a SHA-256 of what it holds, checked when
it is read back, so a damaged one is refused in one line instead of being believed.

Neither format checks itself: torch.load reads a checkpoint with one float flipped (its zip
members carry no CRC it verifies), and a JSON manifest with a changed digit still parses. The
digest is of the content, not of the file's bytes: a walk over the value's plain data, numpy
arrays and torch tensors. It can then live inside the file it describes (one file, written
atomically, still read by plain `torch.load` or `json.load`), and a value read back digests as
it did when written.

    payload[DIGEST_KEY] = content_digest(payload)             # before writing
    check_digest(payload, path)                               # after reading: raises DamagedFile

For JSON, `write_json_with_digest` / `read_json_with_digest` do both.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np

from mixbench.errors import MixbenchError
from mixbench.storage.atomic import json_safe, write_json

DIGEST_KEY = "digest"
_PREFIX = "sha256:"


class DamagedFile(MixbenchError):
    """A file whose content does not match the digest it was written with (or that has none where
    one is required): named in one line."""


def content_digest(value) -> str:
    """'sha256:<hex>' of `value`: dicts (their DIGEST_KEY entry left out, at the top level), lists
    and tuples alike, str, int, float, bool, None, bytes, numpy arrays and scalars, torch tensors.
    Equal content gives an equal digest whatever the dicts' key order."""
    h = hashlib.sha256()
    top = {k: v for k, v in value.items() if k != DIGEST_KEY} if isinstance(value, dict) else value
    _feed(h, top)
    return _PREFIX + h.hexdigest()


def check_digest(payload: dict, path: Path, *, required: bool = True) -> dict:
    """`payload` (read from `path`) without its digest entry; DamagedFile naming `path` when the
    digest does not match, or when there is none and `required`."""
    if not isinstance(payload, dict):
        raise DamagedFile(f"{path} is damaged: it does not hold the record it should")
    stored = payload.get(DIGEST_KEY)
    if stored is None:
        if required:
            raise DamagedFile(f"{path} carries no content digest (written by an older mixbench, or edited): "
                              f"it cannot be trusted")
        return payload
    if not isinstance(stored, str) or stored != content_digest(payload):
        raise DamagedFile(f"{path} is damaged: its content does not match the digest it was written with")
    return {k: v for k, v in payload.items() if k != DIGEST_KEY}


def write_json_with_digest(path: Path, payload: dict) -> None:
    """`payload` as indented JSON (NaN and inf as null, as write_json), with its digest as one more
    top-level entry."""
    body = json_safe({k: v for k, v in payload.items() if k != DIGEST_KEY})
    write_json(path, {**body, DIGEST_KEY: content_digest(body)})


def read_json_with_digest(path: Path, *, required: bool = True) -> dict:
    """The JSON object `write_json_with_digest` wrote at `path`, its digest checked and removed.
    MixbenchError naming the file when it cannot be read; DamagedFile when it does not match
    (or, with `required`, carries no digest)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MixbenchError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:   # mixbench writes no NaN or Infinity: a file that has one was not written by it
        payload = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise DamagedFile(f"{path} is damaged: not valid JSON ({exc})") from None
    return check_digest(payload, path, required=required)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a value mixbench writes")


def _feed(h, value) -> None:
    """Feed `value` to `h` with a tag for its kind and its length, so that no two different
    values (a list and a string of the same characters, [1, 2] and [12]) feed the same bytes."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda item: (type(item[0]).__name__, repr(item[0])))
        h.update(b"d%d;" % len(items))
        for key, item in items:
            _feed(h, key)
            _feed(h, item)
    elif isinstance(value, (list, tuple)):   # a tuple saved comes back a list from JSON
        h.update(b"l%d;" % len(value))
        for item in value:
            _feed(h, item)
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        h.update(b"s%d;" % len(data) + data)
    elif isinstance(value, (bool, np.bool_)):
        h.update(b"b1;" if value else b"b0;")
    elif isinstance(value, (int, np.integer)):
        h.update(b"i%d;" % int(value))
    elif isinstance(value, (float, np.floating)):
        number = float(value)
        # Every NaN alike (their payloads need not survive a round trip); -0.0 stays apart from 0.0.
        h.update(b"fnan;" if math.isnan(number) else b"f" + struct.pack(">d", number))
    elif value is None:
        h.update(b"n;")
    elif isinstance(value, (bytes, bytearray)):
        h.update(b"y%d;" % len(value) + bytes(value))
    elif isinstance(value, np.ndarray):
        _feed_array(h, value.dtype.str, value.shape, np.ascontiguousarray(value).reshape(-1).view(np.uint8))
    elif _is_tensor(value):
        flat = value.detach().cpu().contiguous().reshape(-1)
        # Its bytes as they are (bfloat16 included), read in place: a large checkpoint is not copied.
        data = flat.view(_torch().uint8).numpy() if flat.numel() else np.empty(0, np.uint8)
        _feed_array(h, str(value.dtype), tuple(value.shape), data)
    else:
        raise TypeError(f"cannot digest a {type(value).__name__}")


def _feed_array(h, dtype: str, shape: tuple, data: np.ndarray) -> None:
    h.update(b"a" + dtype.encode() + b"%r;" % (tuple(int(n) for n in shape),) + b"%d;" % data.nbytes)
    h.update(data)


def _torch():
    return sys.modules["torch"]


def _is_tensor(value) -> bool:
    # torch is imported only by whoever made a tensor: without it there is none to digest.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)
