"""Decoding pictures for image-text tasks: any file PIL reads → an (S, S, 3) uint8 RGB array.

One picture (`decode_image`): every PIL mode becomes RGB; transparency is composited over white
(clip art and icons are drawn on a transparent canvas; black, PIL's default, would turn most of
them into dark blobs); the picture keeps its aspect ratio, shrunk with a Lanczos filter so its long
side is S and centred on a white S×S square. A file PIL cannot decode raises `ImageDecodeError`
naming it.

Many pictures (`load_images`): the `BadRows` policy of mixbench.data.rows, one unit a picture: each
bad one is warned about with its name and skipped; more bad ones than tolerated refuse the lot
with one line. Decoding runs on threads (PIL releases the GIL while it inflates and resamples, so
threads can use both cores, with no pickling of bytes to worker processes), with a progress bar
when there are many. The decoded arrays are cached under ``$MIXBENCH_CACHE/images`` keyed by the
task's name and version, the size and the pictures (names, plus file sizes and times or blob
checksums), and written atomically.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from mixbench.data.rows import MAX_BAD_FRACTION, MAX_BAD_ROWS, BadRows
from mixbench.errors import MixbenchError
from mixbench.storage.cache import cache_root, load_npz, save_npz

log = logging.getLogger(__name__)

WHITE = (255, 255, 255)
WORKERS = min(4, os.cpu_count() or 1)   # decoding threads; PIL releases the GIL while it works
PARALLEL_FROM = 64          # fewer pictures than this decode on the calling thread (no pool to start)
PROGRESS_FROM = 500         # a progress bar from this many pictures to decode
# Shrinking in integer steps first, then Lanczos over the last factor of 3: as sharp as Lanczos all
# the way for a 32-pixel target, many times faster on the odd 5000×8000 picture.
REDUCING_GAP = 3.0
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")

# Clip art holds a few honest 100-170-megapixel PNGs; PIL warns about each as a possible
# "decompression bomb". Pictures past its hard limit still fail (and are reported as bad); the
# ones below it are decoded, so the warning is noise here.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageDecodeError(MixbenchError, ValueError):
    """A picture that cannot be decoded; the message names it."""


# An in-memory picture: (its name for messages and the cache key, its encoded bytes).
Blob = tuple[str, bytes]


def decode_image(source: str | os.PathLike | Blob, size: int) -> np.ndarray:
    """An (size, size, 3) uint8 RGB array of a picture file or a (name, bytes) pair.

    Pictures over PIL's hard limit of pixels (about 179 million) are refused like corrupt ones."""
    name, opened = (source[0], BytesIO(source[1])) if isinstance(source, tuple) else (str(source), source)
    try:
        with Image.open(opened) as image:
            if image.format == "JPEG":
                image.draft("RGB", (size, size))   # let libjpeg decode at 1/2..1/8 scale: far less work
            square = _square_on_white(_exif_upright(image), size)
    except UnidentifiedImageError:   # its own message names a BytesIO object, not the picture
        raise ImageDecodeError(f"cannot decode image {name}: not a picture format PIL knows, or its header is "
                               "corrupt") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt file can fail in any decoder step; all mean "bad image"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageDecodeError(f"cannot decode image {name}: {reason}") from None
    return np.asarray(square, dtype=np.uint8).reshape(size, size, 3)


def _exif_upright(image):
    """Photos from cameras store their rotation in EXIF; apply it so the picture is upright."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block does not make the picture itself bad
        return image
    # exif_transpose copies even an upright picture: a gigabyte for the largest clip art.
    return ImageOps.exif_transpose(image) if orientation in range(2, 9) else image


def _square_on_white(image, size: int):
    """`image` shrunk to fit size×size, alpha composited over white, centred on a white square.

    Shrinking before compositing is exact: PIL resamples RGBA/LA with premultiplied alpha."""
    image = _to_rgb_or_rgba(image)
    width, height = image.size
    scale = size / max(width, height)
    fitted = (max(1, round(width * scale)), max(1, round(height * scale)))
    if fitted != image.size:
        image = image.resize(fitted, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    canvas = Image.new("RGB", (size, size), WHITE)
    offset = ((size - fitted[0]) // 2, (size - fitted[1]) // 2)
    if image.mode == "RGBA":
        canvas.paste(image.convert("RGB"), offset, mask=image.getchannel("A"))   # "over" white
    else:
        canvas.paste(image, offset)
    return canvas


def _to_rgb_or_rgba(image):
    """RGBA when the picture has any transparency (alpha band, palette or colour key), else RGB."""
    if image.mode in _SIXTEEN_BIT or image.mode == "F":
        image = _to_8bit_grey(image)
    if image.has_transparency_data:
        return image if image.mode == "RGBA" else image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def _to_8bit_grey(image):
    """16-bit and float grey to 8-bit: PIL's own conversion clips everything above 255 to white."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16") or (image.mode == "I" and values.max(initial=0) > 255):
        values = values / 257.0
    elif image.mode == "F" and values.max(initial=0) <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


# -- many pictures ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decoded:
    """The pictures that decoded: `images[j]` is the picture at position `index[j]` of the input."""

    index: np.ndarray    # (n,) int64, increasing
    images: np.ndarray   # (n, S, S, 3) uint8
    cached: bool         # True when they came from the disk cache


@dataclass(frozen=True)
class CacheKey:
    """What the decoded arrays depend on besides the pictures' names and the size."""

    task: str
    version: str


def load_images(sources: Sequence[str | os.PathLike | Blob], size: int, *, what: str,
                cache: CacheKey | None = None, progress: bool | None = None, workers: int = WORKERS,
                max_bad: int = MAX_BAD_ROWS, max_bad_fraction: float = MAX_BAD_FRACTION) -> Decoded:
    """Decode every picture of `sources`, skipping (and warning about) the bad ones.

    `what` names the collection in messages ("openclipart", "datacomp shard x.tar"). Raises
    TaskDataError when more pictures are bad than tolerated (5 %, at most 50, at least 1). With
    `cache`, the result is read from / written to the image cache; a cache hit decodes nothing.
    `progress`: None shows a bar when there are many pictures (not under --no-progress), False never.
    """
    names = [src[0] if isinstance(src, tuple) else str(src) for src in sources]
    path = cache_path(cache, size, [_fingerprint(src) for src in sources]) if cache is not None else None
    stored = _read_cache(path, len(names), size) if path is not None else None
    if stored is not None:
        return stored
    results = _decode_all(sources, size, what, progress, workers)
    bad = BadRows(what, max_bad=max_bad, max_bad_fraction=max_bad_fraction, unit="image")
    index = []
    for i, result in enumerate(results):
        if isinstance(result, ImageDecodeError):
            bad.add(names[i], str(result).removeprefix(f"cannot decode image {names[i]}: "))
        else:
            index.append(i)
    bad.check(len(names))
    images = np.stack([results[i] for i in index]) if index else np.zeros((0, size, size, 3), np.uint8)
    decoded = Decoded(index=np.asarray(index, dtype=np.int64), images=images, cached=False)
    if path is not None:
        _write_cache(path, decoded)
    return decoded


def _decode_all(sources, size, what, progress, workers) -> list:
    """Each source's array, or the ImageDecodeError it raised; in input order."""
    from tqdm.auto import tqdm

    def one(source):
        try:
            return decode_image(source, size)
        except ImageDecodeError as exc:
            return exc

    # None: a bar for many pictures, unless the command runs with --no-progress. That sets
    # TQDM_DISABLE, which tqdm itself ignores once `disable` is passed, so it is read here as tqdm
    # reads it (any non-empty value disables).
    quiet = bool(os.environ.get("TQDM_DISABLE"))
    show = (len(sources) >= PROGRESS_FROM and not quiet) if progress is None else progress
    bar = tqdm(total=len(sources), desc=f"decoding {what}", unit="image", disable=not show, leave=False,
               file=sys.stderr)
    with bar:
        if workers <= 1 or len(sources) < PARALLEL_FROM:
            results = []
            for source in sources:
                results.append(one(source))
                bar.update()
            return results
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
            results = []
            for result in pool.map(one, sources):   # map keeps input order
                results.append(result)
                bar.update()
            return results


# -- the cache -------------------------------------------------------------------------------------

def cache_path(cache: CacheKey, size: int, fingerprints: Sequence[str]) -> Path:
    """Where the decoded arrays of these pictures are kept: one file per (task, version, size, pictures)."""
    digest = hashlib.sha256(f"{cache.task}\0{cache.version}\0{size}\0".encode())
    for fingerprint in fingerprints:
        digest.update(fingerprint.encode("utf-8", errors="surrogatepass") + b"\0")
    folder = cache_root() / "images" / f"{_safe(cache.task)}-{_safe(cache.version)}"
    return folder / f"{size}px-{len(fingerprints)}-{digest.hexdigest()[:20]}.npz"


def _fingerprint(source: str | os.PathLike | Blob) -> str:
    """A picture's name plus what changes when its content does (a file's size and mtime, a blob's
    length and CRC), so a picture replaced in place is never served stale from the cache."""
    if isinstance(source, tuple):
        name, data = source
        return f"{name}\0{len(data)}\0{zlib.crc32(data)}"
    try:
        stat = os.stat(source)
    except OSError:
        return f"{source}\0unreadable"
    return f"{source}\0{stat.st_size}\0{stat.st_mtime_ns}"


def _safe(text: str) -> str:
    """A folder-name-safe form of a task name or version (Debian versions hold ':')."""
    return "".join(c if c.isalnum() or c in "+-._" else "_" for c in text)


def _read_cache(path: Path, count: int, size: int) -> Decoded | None:
    stored = load_npz(path)
    if stored is None:
        return None
    index, images = stored.get("index"), stored.get("images")
    shape_ok = (index is not None and images is not None and images.dtype == np.uint8
                and images.shape[1:] == (size, size, 3) and len(images) == len(index))
    if not shape_ok or (len(index) and (index.min() < 0 or index.max() >= count)):
        log.warning("image cache %s does not match the pictures; decoding again", path)
        return None
    return Decoded(index=index.astype(np.int64), images=images, cached=True)


def _write_cache(path: Path, decoded: Decoded) -> None:
    save_npz(path, index=decoded.index, images=decoded.images)
