"""openclipart: public-domain clip art with its authors' titles as captions, 22 folders as domains.

Data: the Debian packages ``openclipart-png`` (the PNG tree) and ``openclipart-svg`` (the same tree
as SVG, carrying each picture's metadata), version 1:0.18+dfsg-19 in bookworm: 8,121 pictures in
22 top-level folders (animals, computer, food, shapes, ...), the task's 22 original domains. Public
domain (see the packages' copyright files). Get it with ``scripts/fetch_openclipart.sh``, which
runs ``apt-get download`` and ``dpkg -x`` (no root install) into ``$MIXBENCH_DATA/openclipart``;
``OpenClipart(path=...)`` or MIXBENCH_OPENCLIPART point elsewhere (a folder holding
``usr/share/openclipart/png``, or ``png/`` itself), and a system install at
``/usr/share/openclipart`` is used when nothing else is there. The analogue of DataComp here:
noisy captions written for humans, not for a model.

An example: the PNG, decoded to a budget.image_size square (transparency over white), and a
caption from the matching SVG's metadata: its ``dc:title``, else its keywords (``dc:subject``),
else the cleaned file name. Debian links identical files between folders; a picture with the same
caption is kept once (the real file's folder wins), so no picture is in both train and eval.
Domains over `max_per_domain` pictures (computer, shapes, signs_and_symbols) are capped by a
seeded draw. Split per domain: 90 % train / 5 % evaluation, seeded by `split_seed`.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from mixbench.tasks import datafiles
from mixbench.tasks.local import LocalDataTask

from mixbench.config import TrainConfig
from mixbench.data.images import CacheKey, load_images
from mixbench.data.rows import drop_empty_domains, stable_hash
from mixbench.task import Example, TaskData, TaskDataError, TaskInfo

log = logging.getLogger(__name__)

ENV = "MIXBENCH_OPENCLIPART"
FETCH_SCRIPT = "scripts/fetch_openclipart.sh"
SYSTEM_TREE = Path("/usr/share/openclipart")      # where the Debian packages install it
TREE_IN_EXTRACT = Path("usr/share/openclipart")     # the same tree inside a `dpkg -x` folder
PACKAGES = ("openclipart-png", "openclipart-svg")
UPSTREAM_DOMAINS = 22
DPKG_STATUS = Path("/var/lib/dpkg/status")

DC = "{http://purl.org/dc/elements/1.1/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"


@dataclass(kw_only=True, eq=False)
class OpenClipart(LocalDataTask):
    """openclipart clip art (Debian openclipart-png/-svg), titles as captions, 22 folders as domains."""

    # ~5,500 pictures after the cap, 22 domains; captions are short (median 13 bytes, 99 % within 64).
    # A step of the small CLIP at batch 64 takes 60-200 ms on 2 (busy) CPU cores: 2,000 steps are a
    # few minutes.
    budget = TrainConfig(model="clip", image_size=32, seq_len=64, n_layer=2, n_head=2, n_embd=64, batch_size=64,
                         steps=2000, steps_per_round=100, lr=1e-3, eval_per_domain=16)

    name = folder = "openclipart"
    env = ENV

    # path: LocalDataTask
    max_per_domain: int | None = 1000
    train_fraction: float = 0.9
    eval_fraction: float = 0.05
    split_seed: int = 0

    # -- where the data is: a tree, not files
    def _tree(self) -> Path | None:
        """The folder holding png/ (and svg/): in a `dpkg -x` folder, the folder itself, or the
        system install when no location was named."""
        location = self._location()
        candidates = [location / TREE_IN_EXTRACT, location]
        if self.path is None and not os.environ.get(self.env):
            candidates.append(SYSTEM_TREE)
        return next((c for c in candidates if _has_png(c / "png")), None)

    def _missing(self) -> str | None:
        if self._tree() is not None:
            return None
        return (f"run {FETCH_SCRIPT} {self._location()} (apt-get download {' '.join(PACKAGES)} + dpkg -x, no "
                f"root needed), or set {self.env} to a folder holding usr/share/openclipart/png")

    def _version(self) -> str:
        tree = self._tree()
        return tree_version(tree) if tree is not None else "not-available"

    def info(self) -> TaskInfo:
        tree = self._tree()
        return TaskInfo(
            name=self.name,
            description="openclipart public-domain clip art with title captions, its 22 top-level folders as "
                        "domains (an offline stand-in for DataComp's noisy captions)",
            source=f"Debian packages {' + '.join(PACKAGES)} ({tree or self._location()})",
            license="public domain (Open Clip Art Library; see the packages' copyright files)",
            version=self._version(),
            modality="image-text",
            original_domains=len(_domain_folders(tree)) if tree is not None else UPSTREAM_DOMAINS,
        )

    def load(self) -> TaskData:
        datafiles.check_fractions(self.name, self.train_fraction, self.eval_fraction)
        if self.max_per_domain is not None and self.max_per_domain < 1:
            raise TaskDataError(f"openclipart: max_per_domain must be at least 1 (or None), got {self.max_per_domain}")
        self._require_data()
        tree = self._tree()
        if not (tree / "svg").is_dir():
            log.warning("openclipart: no SVG tree at %s; captions come from file names (run %s for both "
                        "packages)", tree / "svg", FETCH_SCRIPT)
        listed = list_pictures(tree)
        distinct = _once_each(listed)
        pictures = _cap_domains(distinct, self.max_per_domain, self.split_seed)
        examples = self._decode(pictures, tree)
        log.info("openclipart: %d PNGs, %d once links are followed, %d under the cap of %s per domain, %d distinct "
                 "decoded examples", len(listed), len(distinct), len(pictures), self.max_per_domain, len(examples))
        groups = {p.domain: [] for p in pictures}
        for e in examples:
            groups[e.domain].append(e)
        drop_empty_domains(groups, "openclipart")   # warns about a folder none of whose pictures decoded
        train, evaluation = datafiles.split_by_stratum(
            examples, lambda e: e.domain, train_fraction=self.train_fraction, eval_fraction=self.eval_fraction,
            seed=self.split_seed)
        return TaskData(train=train, eval=evaluation)

    def _decode(self, pictures: list[Picture], tree: Path) -> list[Example]:
        """The pictures as examples; undecodable ones skipped, repeats of a (picture, caption) dropped."""
        size = self.budget.image_size
        files = sorted({p.file for p in pictures})
        decoded = load_images(files, size, what=f"openclipart ({tree / 'png'})",
                              cache=CacheKey("openclipart", tree_version(tree)))
        image_of = {files[i]: decoded.images[j] for j, i in enumerate(decoded.index)}
        seen, examples = set(), []
        for p in sorted(pictures, key=lambda p: (p.linked, p.relative)):   # real files before links
            image = image_of.get(p.file)
            key = (p.caption, None if image is None else image.tobytes())  # identical files Debian did not link
            if image is None or key in seen:
                continue
            seen.add(key)
            examples.append((p.relative, Example(prompt="", response=p.caption, domain=p.domain, image=image)))
        return [e for _, e in sorted(examples, key=lambda pair: pair[0])]


# -- the tree ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Picture:
    relative: str    # path under png/, e.g. "food/fruit/apple_01.png"
    domain: str      # its top-level folder
    file: str        # the PNG with links resolved (the pixels)
    linked: bool     # True when the PNG is a link to a file elsewhere
    caption: str


def list_pictures(tree: Path) -> list[Picture]:
    """Every PNG under tree/png in a domain folder, captioned from tree/svg, in path order."""
    png_root, svg_root = tree / "png", tree / "svg"
    pictures = []
    for png in sorted(png_root.rglob("*.png")):
        relative = png.relative_to(png_root)
        if len(relative.parts) < 2:
            log.warning("openclipart: %s is in no domain folder; skipped", png)
            continue
        if not png.is_file():   # a dangling link
            log.warning("openclipart: %s is a link to nothing; skipped", png)
            continue
        pictures.append(Picture(relative=relative.as_posix(), domain=relative.parts[0], file=os.path.realpath(png),
                                linked=png.is_symlink(), caption=caption(svg_root / relative.with_suffix(".svg"))))
    return pictures


def _once_each(pictures: list[Picture]) -> list[Picture]:
    """One picture per (file, caption): a Debian link repeats a picture in a second folder."""
    kept = {}
    for p in sorted(pictures, key=lambda p: (p.linked, p.relative)):   # the real file's folder wins
        kept.setdefault((p.file, p.caption), p)
    return sorted(kept.values(), key=lambda p: p.relative)


def _cap_domains(pictures: list[Picture], cap: int | None, seed: int) -> list[Picture]:
    """At most `cap` pictures per domain, drawn by a generator seeded by (seed, domain name)."""
    if cap is None:
        return pictures
    by_domain = defaultdict(list)
    for p in pictures:
        by_domain[p.domain].append(p.relative)
    kept = set()
    for domain, names in by_domain.items():
        kept.update(datafiles.seeded_subset(names, cap, [seed, stable_hash(domain)]))
    return [p for p in pictures if p.relative in kept]


def _has_png(folder: Path) -> bool:
    return folder.is_dir() and next(folder.rglob("*.png"), None) is not None


def _domain_folders(tree: Path) -> list[str]:
    """Top-level folders of png/ that hold a PNG file of their own (not only links elsewhere)."""
    png_root = tree / "png"
    return sorted(d.name for d in png_root.iterdir() if d.is_dir()
                  and any(p.is_file() and not p.is_symlink() for p in d.rglob("*.png")))


def tree_version(tree: Path) -> str:
    """The Debian package version ("debian-1:0.18+dfsg-19"), from the changelog `dpkg -x` unpacks
    or from dpkg's database for a system install; else a hash of the PNG names and sizes."""
    versions = set()
    for package in PACKAGES:
        version = _changelog_version(tree.parent / "doc" / package / "changelog.Debian.gz")
        if version is None and tree.resolve() == SYSTEM_TREE:
            version = _dpkg_version(package)
        if version is not None:
            versions.add(version)
    if len(versions) == 1:
        return f"debian-{versions.pop()}"
    if versions:    # the two packages from different releases: name both
        return "debian-" + "+".join(sorted(versions))
    digest = hashlib.sha256()
    png_root = tree / "png"
    for png in sorted(png_root.rglob("*.png")):
        size = png.stat().st_size if png.is_file() else -1
        digest.update(f"{png.relative_to(png_root).as_posix()}\0{size}\0".encode())
    return "files-" + digest.hexdigest()[:12]


def _changelog_version(path: Path) -> str | None:
    """The version in a Debian changelog's first line: "openclipart (1:0.18+dfsg-19) unstable; ..."."""
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            first = f.readline()
    except (OSError, EOFError):
        return None
    match = re.match(r"\S+ \(([^)\s]+)\)", first)
    return match.group(1) if match else None


def _dpkg_version(package: str) -> str | None:
    try:
        text = DPKG_STATUS.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
        if fields.get("Package") == package and "installed" in fields.get("Status", ""):
            return fields.get("Version")
    return None


# -- captions ---------------------------------------------------------------------------------------

def caption(svg: Path) -> str:
    """The picture's dc:title, else its keywords, else its file name made readable."""
    title, keywords = svg_metadata(svg)
    return title or ", ".join(keywords) or name_caption(svg.stem)


def svg_metadata(svg: Path) -> tuple[str, list[str]]:
    """(dc:title of the work, dc:subject keywords) of an SVG; ("", []) when it has none or is broken.

    Only the work's own title counts: the creator, publisher and rights agents carry a dc:title
    too (the author's or library's name). The parse stops at the end of <metadata>, which comes
    before the drawing, so a large SVG costs little.
    """
    title, keywords, stack = "", [], []
    try:
        for event, element in ET.iterparse(svg, events=("start", "end")):
            if event == "start":
                stack.append(element)
                continue
            stack.pop()
            parent = stack[-1] if stack else None
            if element.tag == f"{DC}title" and not title and parent is not None and _local(parent.tag) != "Agent":
                title = _clean(element.text)
            elif element.tag == f"{RDF}li" and len(stack) >= 2 and stack[-2].tag == f"{DC}subject":
                keywords += [k for k in (_clean(element.text),) if k]
            elif _local(element.tag) == "metadata" and (title or keywords):
                break
    except (ET.ParseError, OSError, UnicodeError, ValueError) as exc:
        log.debug("openclipart: %s has no readable metadata (%s); caption from what was read or the file name",
                  svg, exc)
    return title, keywords


def name_caption(stem: str) -> str:
    """A file name as words: "barattolo_di_pillole_arc_01" → "barattolo di pillole arc"."""
    words = re.sub(r"[_\-.\s]+", " ", stem).strip()
    words = re.sub(r"(\s+\d{1,2})+$", "", words)   # the _01, _02 numbering of variants
    return words or stem


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())
