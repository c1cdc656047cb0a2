"""The Debian packages the pretraining corpus is read from, and how each becomes documents.

Chosen for their licences (permissive, so the base and a slice of its corpus may ship) and for
being general English that no mixbench task evaluates on:

    wordnet-base    WordNet 3.0 glosses (WordNet 3.0 licence: use, copy, modify, distribute)
    python3.11-doc  the Python 3.11 documentation's reStructuredText sources (PSF licence)

dict-gcide (GPL) and the manual pages (mixed licences) were passed over: weights and a corpus
slice shipped under an MIT repository should not carry copyleft or per-page terms.

A document is one WordNet synset ("words (part of speech): gloss") or one documentation page.
Files are read in sorted order and every text goes through one fixed normalisation, so the
same packages give the same corpus byte for byte.
"""

from __future__ import annotations

import hashlib
import subprocess
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mixbench.errors import MixbenchError

WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_FILES = ("data.adj", "data.adv", "data.noun", "data.verb")
PYDOC_DIR = Path("/usr/share/doc/python3.11/html/_sources")
PACKAGES = {"wordnet-base": "WordNet 3.0 licence", "python3.11-doc": "PSF licence (Python Software Foundation)"}
INSTALL = "apt-get update && apt-get install -y --no-install-recommends wordnet-base python3.11-doc"
PART_OF_SPEECH = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}


@dataclass(frozen=True)
class SourceFile:
    package: str
    path: Path

    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def source_files() -> list[SourceFile]:
    """Every file the corpus reads, in the order it reads them; a MixbenchError naming the
    install command if the packages are not here."""
    wordnet = [WORDNET_DIR / name for name in WORDNET_FILES]
    pydoc = sorted(PYDOC_DIR.rglob("*.rst.txt")) if PYDOC_DIR.is_dir() else []
    if not all(p.is_file() for p in wordnet) or not pydoc:
        raise MixbenchError(f"the pretraining corpus needs the Debian packages wordnet-base and python3.11-doc: "
                            f"{INSTALL}")
    return [SourceFile("wordnet-base", p) for p in wordnet] + [SourceFile("python3.11-doc", p) for p in pydoc]


def package_versions() -> dict[str, str]:
    """The installed version of each source package (dpkg's word for it)."""
    versions = {}
    for package in PACKAGES:
        try:
            out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                                 check=False)
            versions[package] = out.stdout.strip() or "unknown"
        except OSError:
            versions[package] = "unknown"
    return versions


def documents(files: list[SourceFile]) -> Iterator[str]:
    """The corpus's documents, normalised, in file order."""
    for source in files:
        if source.package == "wordnet-base":
            yield from _synsets(source.path)
        else:
            yield _page(source.path)


def normalise(text: str) -> str:
    """NFC, Unix line ends, tabs as 4 spaces, no trailing blanks, at most one empty line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").expandtabs(4)
    lines, blank = [], 0
    for line in text.split("\n"):
        line = line.rstrip()
        blank = blank + 1 if not line else 0
        if blank <= 1:
            lines.append(line)
    return "\n".join(lines).strip("\n")


def _synsets(path: Path) -> Iterator[str]:
    # wndb(5WN): offset lex_filenum ss_type w_cnt(hex) [word lex_id]... p_cnt [ptr...] [frames] | gloss
    # Lines starting with two spaces are the licence header.
    for raw in path.read_text(encoding="utf-8", errors="strict").splitlines():
        if raw.startswith("  ") or "|" not in raw:
            continue
        fields, gloss = raw.split(" | ", 1) if " | " in raw else raw.split("|", 1)
        parts = fields.split()
        count = int(parts[3], 16)
        words = [_word(parts[4 + 2 * i]) for i in range(count)]
        yield normalise(f"{', '.join(words)} ({PART_OF_SPEECH[parts[2]]}): {gloss.strip()}")


def _word(token: str) -> str:
    # Adjectives may carry a syntactic marker, e.g. "galore(ip)"; underscores join compound words.
    if token.endswith(")") and "(" in token:
        token = token[: token.rindex("(")]
    return token.replace("_", " ")


def _page(path: Path) -> str:
    return normalise(path.read_text(encoding="utf-8", errors="strict"))
