"""The pretraining corpus as a one-domain task: documents cut into fixed windows of bytes.

Every `EVAL_EVERY`-th document is held out whole (the base's held-out general text). The rest
are packed, in order, into windows (`pack`): short documents (a WordNet synset) share a window,
joined by a blank line; a long one (a documentation page) is cut into full windows of
`seq_len + 1` bytes, each cut moved back to the start of a UTF-8 character. A window is an
example with an empty prompt, so the text workload scores every byte of it, exactly as it
trains on task responses. A window that ends a document is at most `seq_len` bytes, so the
workload's end-of-text token follows it, as it follows every task response: the base learns
where a text ends (without it, short task answers cost it more than an untrained model).

Where the Debian packages are missing (a CI machine, a fresh clone), the corpus is the shipped
slice instead: the windows the recipe's first steps draw, at their places among placeholders
(slice.py). The sampler sees the same number of windows either way, so it draws the same rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mixbench.experiments.pretrain import sources
from mixbench.task import Example, TaskData

DOMAIN = "general"
EVAL_EVERY = 50
SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Corpus:
    train: list[str]                 # the training windows, in stream order
    eval: list[str]                  # the held-out windows
    sha256: dict[str, str]           # of the train and eval streams
    files: list[dict]                # each source file: package, path, sha256
    documents: int

    def task_data(self) -> TaskData:
        return windows_as_task(self.train, self.eval)

    @property
    def bytes(self) -> int:
        return sum(len(w.encode("utf-8")) for w in self.train)


def build(window_bytes: int) -> Corpus:
    """The corpus from the installed Debian packages (MixbenchError if they are missing)."""
    files = sources.source_files()
    train_docs, eval_docs = [], []
    for index, doc in enumerate(sources.documents(files)):
        if doc:
            (eval_docs if index % EVAL_EVERY == 0 else train_docs).append(doc)
    train, evaluation = pack(train_docs, window_bytes), pack(eval_docs, window_bytes)
    return Corpus(train=train, eval=evaluation,
                  sha256={"train": _sha256(train), "eval": _sha256(evaluation)},
                  files=[{"package": f.package, "path": str(f.path), "sha256": f.sha256()} for f in files],
                  documents=len(train_docs) + len(eval_docs))


def pack(documents: list[str], window_bytes: int) -> list[str]:
    """The documents in windows of at most `window_bytes` bytes: a window that ends a document
    (room left for the end-of-text token) holds as many whole documents as fit in
    `window_bytes - 1`; a longer document first fills full windows."""
    windows, current = [], b""
    room = window_bytes - 1
    for doc in documents:
        data = doc.encode("utf-8")
        joined = current + SEPARATOR.encode() + data if current else data
        if len(joined) <= room:
            current = joined
            continue
        if current:
            windows.append(current.decode("utf-8"))
        pieces = cut(data, window_bytes)
        last = pieces[-1].encode("utf-8")
        if len(last) > room:   # the document ends a full window: no room for the end token
            windows.extend(pieces)
            current = b""
        else:                  # its end opens the next window
            windows.extend(pieces[:-1])
            current = last
    if current:
        windows.append(current.decode("utf-8"))
    return windows


def _sha256(windows: list[str]) -> str:
    """Of the windows as trained: each one's bytes, NUL between them."""
    return hashlib.sha256("\0".join(windows).encode("utf-8")).hexdigest()


def cut(stream: bytes, window_bytes: int) -> list[str]:
    """`stream` in consecutive windows of at most `window_bytes` bytes, each ending before a
    UTF-8 continuation byte (so every window decodes whole); a last short window is kept."""
    windows, start = [], 0
    while start < len(stream):
        end = min(start + window_bytes, len(stream))
        while end < len(stream) and end > start + 1 and (stream[end] & 0xC0) == 0x80:
            end -= 1
        windows.append(stream[start:end].decode("utf-8"))
        start = end
    return windows


def windows_as_task(train: list[str], evaluation: list[str]) -> TaskData:
    return TaskData(train=[Example(prompt="", response=w, domain=DOMAIN) for w in train],
                    eval=[Example(prompt="", response=w, domain=DOMAIN) for w in evaluation])
