"""datacomp: DataComp-small image-text pairs from webdataset shards; one domain, so run it regrouped.

Data (mixbench never downloads it): the small pool of DataComp
(https://github.com/mlfoundations/datacomp, 12.8M pairs; ``download_upstream.py --scale small``
fetches the images with img2dataset) as webdataset ``*.tar`` shards: the members of one sample
share a key (the member's path up to the first dot of its base name) and are ``<key>.jpg`` (or
.jpeg/.png/.webp), ``<key>.txt`` (the caption) and/or ``<key>.json`` (with ``"caption"`` and
``"uid"``). Put a folder of shards at ``$MIXBENCH_DATA/datacomp/``, pass ``DataComp(path=...)`` or
set MIXBENCH_DATACOMP. Licence: DataComp's metadata is CC BY 4.0; the images stay their owners'
(the pool is a list of web links), so use them for research only, as upstream asks.

DataComp has no original domains (the paper: "none: clusters only"). Every example is in the one
domain "datacomp" and R&B is meant to run with ``--domains regroup``, which clusters the captions
into domains. An example: the image decoded to a budget.image_size square (transparency over
white) and its caption (.txt first, else the json's "caption"). Shards are read in name order
until `max_samples` samples are found. Split by a stable hash of (split_seed, sample key): 90 %
train / 5 % evaluation, so a sample's split never depends on which other samples were read.

Bad data: a sample with no image or no caption, an image that does not decode, a shard that is
truncated or unreadable part-way are each warned about (shard and key named) and skipped; more of
them than tolerated (5 %, at most 50) refuse the load with one line. A file that is not a tar at
all is refused at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mixbench.tasks import datafiles
from mixbench.tasks.local import LocalDataTask

from mixbench.config import TrainConfig
from mixbench.data.images import CacheKey, load_images
from mixbench.data.rows import BadRows, repair_text
from mixbench.task import Example, TaskData, TaskDataError, TaskInfo

log = logging.getLogger(__name__)

ENV = "MIXBENCH_DATACOMP"
DOMAIN = "datacomp"
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
CAPTION_EXTENSIONS = ("txt", "json")
DECODE_CHUNK = 2048        # samples decoded (and cached) together: bounds the encoded bytes held in memory
TAR_BLOCK = 512


@dataclass(kw_only=True, eq=False)
class DataComp(LocalDataTask):
    """DataComp-small image-caption pairs (local webdataset shards); one domain: use --domains regroup."""

    # One original domain: the eval subset is drawn from it alone, so it is large (regroup then
    # spreads it over the clusters). Web captions run longer than clip-art titles.
    budget = TrainConfig(model="clip", image_size=32, seq_len=128, n_layer=2, n_head=2, n_embd=64, batch_size=64,
                         steps=2000, steps_per_round=100, lr=1e-3, eval_per_domain=512)

    name = folder = "datacomp"
    env = ENV
    wanted = ("DataComp-small webdataset shards (*.tar from mlfoundations/datacomp, download_upstream.py --scale "
              "small)")
    suffixes = (".tar",)

    # path: LocalDataTask
    max_samples: int | None = 20_000
    train_fraction: float = 0.9
    eval_fraction: float = 0.05
    split_seed: int = 0

    def info(self) -> TaskInfo:
        return TaskInfo(
            name=self.name,
            description="DataComp-small web image-caption pairs; no original domains (one domain 'datacomp'): "
                        "run with --domains regroup",
            source=f"https://github.com/mlfoundations/datacomp small pool ({self._location()})",
            license="CC BY 4.0 (DataComp metadata); images remain their owners' (research use)",
            version=self._version(),
            modality="image-text",
            original_domains=1,
        )

    def load(self) -> TaskData:
        datafiles.check_fractions(self.name, self.train_fraction, self.eval_fraction)
        if self.max_samples is not None and self.max_samples < 1:
            raise TaskDataError(f"datacomp: max_samples must be at least 1 (or None), got {self.max_samples}")
        self._require_data()
        shards = self._files()
        cache = CacheKey(self.name, datafiles.files_version(shards))
        examples, samples = [], []
        broken_shards = BadRows(f"datacomp shards in {self._location()}", unit="shard")
        shards_read = 0
        for shard in shards:
            if self.max_samples is not None and len(examples) + len(samples) >= self.max_samples:
                break
            shards_read += 1
            for sample in read_shard(shard, broken_shards):
                samples.append(sample)
                if len(samples) >= DECODE_CHUNK:
                    examples += self._decode(samples, cache)
                    samples = []
                if self.max_samples is not None and len(examples) + len(samples) >= self.max_samples:
                    break
        examples += self._decode(samples, cache)
        broken_shards.check(shards_read)
        log.info("datacomp: %d samples from %d of %d shards", len(examples), shards_read, len(shards))
        train, evaluation = [], []
        for key, example in examples:
            share = _unit_hash(self.split_seed, key)
            if share < self.train_fraction:
                train.append(example)
            elif share < self.train_fraction + self.eval_fraction:
                evaluation.append(example)
        return TaskData(train=train, eval=evaluation)

    def _decode(self, samples: list[Sample], cache: CacheKey) -> list[tuple[str, Example]]:
        """(key, example) of each sample whose image decodes."""
        if not samples:
            return []
        blobs = [(f"{s.shard}:{s.image_name}", s.image) for s in samples]
        decoded = load_images(blobs, self.budget.image_size, what=f"datacomp ({self._location()})", cache=cache,
                              progress=False)
        return [(samples[i].key, Example(prompt="", response=samples[i].caption, domain=DOMAIN, image=image))
                for i, image in zip(decoded.index, decoded.images)]


def _unit_hash(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by (seed, key), the same in every process."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode("utf-8", errors="surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


# -- reading shards ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    shard: str        # the shard's file name, for messages
    key: str
    image_name: str   # the image member's name
    image: bytes
    caption: str


def read_shard(path: Path, broken_shards: BadRows) -> Iterator[Sample]:
    """The complete samples of one webdataset shard, in order.

    A bad sample is warned about and skipped (too many → TaskDataError, per shard). A shard that
    cannot be read, or ends early, is reported to `broken_shards` after its good samples; a file
    that is not a tar at all raises TaskDataError.
    """
    try:
        tar = tarfile.open(path, mode="r:")   # reads the first header: a non-tar fails here
    except tarfile.ReadError as exc:
        raise TaskDataError(f"{path} is not a tar archive ({exc}); datacomp shards are webdataset .tar "
                            "files") from None
    except OSError as exc:
        broken_shards.add(path.name, f"cannot be read ({exc.strerror or exc}); skipped")
        return
    bad = BadRows(str(path), unit="sample")
    examined, key, members = 0, None, {}
    with tar:
        try:
            for member in tar:
                if not member.isfile():
                    continue
                member_key, extension = split_member_name(member.name)
                if member_key != key:    # webdataset keeps a sample's members together
                    if key is not None:
                        examined += 1
                        yield from _complete(path.name, key, members, bad)
                    key, members = member_key, {}
                if extension in IMAGE_EXTENSIONS or extension in CAPTION_EXTENSIONS:
                    members[extension] = tar.extractfile(member).read()
            ended = _has_end_marker(path, tar.offset)
        except (tarfile.TarError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            broken_shards.add(path.name, f"truncated or unreadable in sample {key!r} ({reason}); the rest skipped")
            bad.check(max(examined, 1))
            return
    if key is not None:
        examined += 1
        yield from _complete(path.name, key, members, bad)
    if not ended:   # tarfile stops quietly at a cut header; a whole tar ends with a zero block
        broken_shards.add(path.name, f"ends without the end-of-archive block after sample {key!r} (truncated?)")
    bad.check(max(examined, 1))


def split_member_name(name: str) -> tuple[str, str]:
    """A webdataset member's (sample key, extension): "d/000123.tar.jpg"... → ("d/000123", "jpg")."""
    folder, base = posixpath.split(name)
    stem, _, extension = base.partition(".")
    return posixpath.join(folder, stem), extension.lower()


def _complete(shard: str, key: str, members: dict[str, bytes], bad: BadRows) -> Iterator[Sample]:
    """The sample `key` if it has an image and a caption; else it is reported to `bad`."""
    image_ext = next((ext for ext in IMAGE_EXTENSIONS if ext in members), None)
    if image_ext is None:
        bad.add(key, f"no image (.{'/.'.join(IMAGE_EXTENSIONS)})")
        return
    try:
        caption = _caption(members)
    except ValueError as exc:
        bad.add(key, str(exc))
        return
    yield Sample(shard=shard, key=key, image_name=f"{key}.{image_ext}", image=members[image_ext], caption=caption)


def _caption(members: dict[str, bytes]) -> str:
    """The .txt caption, else the .json's "caption"; ValueError saying why there is none."""
    problems = []
    if "txt" in members:
        try:
            text = " ".join(members["txt"].decode("utf-8").split())
            problems.append(".txt is empty")
        except UnicodeDecodeError:
            text = ""
            problems.append(".txt is not UTF-8")
        if text:
            return text
    if "json" in members:
        try:
            record = json.loads(members["json"])
            value, _ = repair_text(record.get("caption") if isinstance(record, dict) else None)   # "\ud800" is JSON
            text = " ".join(value.split()) if isinstance(value, str) else ""
            problems.append('.json has no "caption"')
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            text = ""
            problems.append(f".json is not valid JSON: {exc}")
        if text:
            return text
    raise ValueError("no caption (" + ("; ".join(problems) or 'no .txt and no .json with a "caption"') + ")")


def _has_end_marker(path: Path, offset: int) -> bool:
    """True when the block where tarfile stopped reading is all zeros (the end-of-archive marker)."""
    with open(path, "rb") as f:
        f.seek(offset)
        block = f.read(TAR_BLOCK)
    return len(block) == TAR_BLOCK and not block.strip(b"\0")
