"""Conformance checks every Embedder must pass — built-ins and plugins alike.

Regroup trusts three things of an embedder: its `identity()` names everything that changes its
output (embeddings are cached under it, in a file named after it); the same texts give the same
vectors, whatever else is in the batch (each distinct text is embedded once and the rows are
reused); the vectors are finite float32 rows, one per text. The checks hold it to those on a
small fixed corpus. A subject is an embedder instance, wrapped in an `EmbedderUnderTest` so each
check starts from an unfitted copy. Use them through `mixbench.testing`.
"""

from __future__ import annotations

import copy

import numpy as np

from mixbench.embedder import Embedder
from mixbench.testing.kit import Kit, assert_stores_params_only

_TOPICS = ("algebra", "music", "football", "cooking", "weather", "astronomy")
_WORDS = ("the quick answer", "a simple proof", "an old recipe", "the final score", "a cold morning",
          "a distant star", "three short notes", "one long road")
# Sixty short texts over six topics: enough for a vocabulary-learning embedder (TF-IDF) to fit.
TRAIN_TEXTS = [f"{_TOPICS[i % 6]} question {i}: {_WORDS[i % 8]} about {_TOPICS[(i * 7) % 6]} and {_WORDS[(i * 3) % 8]}"
               for i in range(60)]
HELD_OUT_TEXTS = [
    "a question about algebra and a simple proof",
    "the weather this morning was cold",
    "Ünïcödé, emoji 🎵 and 中文 are text too",
    " ".join(["a very long text about football"] * 400),
]
UNSAFE_IN_FILE_NAMES = set('/\\:*?"<>|\0\n')
TOLERANCE = 1e-4


class EmbedderUnderTest:
    """An embedder as given, kept unfitted: `fresh()` gives a copy no check has touched."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder
        self._pristine = copy.deepcopy(embedder)

    def fresh(self) -> Embedder:
        return copy.deepcopy(self._pristine)

    def fitted(self) -> Embedder:
        embedder = self.fresh()
        embedder.fit(list(TRAIN_TEXTS))
        return embedder


def under_test(embedder: Embedder | EmbedderUnderTest) -> EmbedderUnderTest:
    return embedder if isinstance(embedder, EmbedderUnderTest) else EmbedderUnderTest(embedder)


def _embedded(embedder: Embedder, texts: list[str], progress: bool = False) -> np.ndarray:
    try:
        return embedder.embed(list(texts), progress=progress)
    except Exception as exc:  # noqa: BLE001 - any exception is the embedder's failure
        raise AssertionError(f"embed() raised {type(exc).__name__}: {exc}") from exc


def _rows(embedder: Embedder, texts: list[str], progress: bool = False) -> np.ndarray:
    """embed(texts) as an array of one row per text, for the checks that compare vectors (a
    wrong shape is reported, not left to fail as an IndexError in the comparison)."""
    x = np.asarray(_embedded(embedder, texts, progress))
    assert x.ndim == 2 and x.shape[0] == len(texts), f"embed() of {len(texts)} texts gave shape {x.shape}"
    return x


# -- the checks ---------------------------------------------------------------------------------

def check_init_stores_params_only(embedder: Embedder | EmbedderUnderTest) -> None:
    """__init__ stores its keyword options and nothing else; get_params round-trips."""
    assert_stores_params_only(under_test(embedder).fresh())


def check_identity(embedder: Embedder | EmbedderUnderTest) -> None:
    """identity() is a non-empty string usable in a file name, the same for equal options and
    unchanged by fitting (the cache key is taken before the fit)."""
    subject = under_test(embedder)
    identity = subject.fresh().identity()
    assert isinstance(identity, str) and identity.strip(), f"identity() returned {identity!r}"
    unsafe = sorted(set(identity) & UNSAFE_IN_FILE_NAMES)
    assert not unsafe, f"identity() {identity!r} holds characters a file name cannot: {unsafe}"
    assert len(identity) <= 120, f"identity() is {len(identity)} characters; cache file names need it short"
    rebuilt = type(subject.embedder)(**subject.embedder.get_params())
    assert rebuilt.identity() == identity, f"equal options, different identities: {rebuilt.identity()!r}"
    assert subject.fitted().identity() == identity, "fit() changed identity()"


def check_embeddings(embedder: Embedder | EmbedderUnderTest) -> None:
    """After fit on training texts, embed gives a finite float32 (n, d) array for any texts,
    unicode and very long ones included, with the same d for every call."""
    fitted = under_test(embedder).fitted()
    held_out = _embedded(fitted, HELD_OUT_TEXTS)
    train = _embedded(fitted, TRAIN_TEXTS[:7])
    for x, n in ((held_out, len(HELD_OUT_TEXTS)), (train, 7)):
        assert isinstance(x, np.ndarray), f"embed() returned {type(x).__name__}, not a numpy array"
        assert x.dtype == np.float32, f"embed() returned {x.dtype}, not float32"
        assert x.ndim == 2 and x.shape[0] == n and x.shape[1] >= 1, f"embed() of {n} texts gave shape {x.shape}"
        assert np.all(np.isfinite(x)), "embed() returned non-finite values"
    assert held_out.shape[1] == train.shape[1], (
        f"dimension changed between calls: {held_out.shape[1]} vs {train.shape[1]}")


def check_deterministic(embedder: Embedder | EmbedderUnderTest) -> None:
    """Two fresh instances fitted on the same texts embed them the same: the cache may serve
    one's vectors for the other's."""
    subject = under_test(embedder)
    a = _rows(subject.fitted(), HELD_OUT_TEXTS)
    b = _rows(subject.fitted(), HELD_OUT_TEXTS)
    assert a.shape == b.shape, f"two fresh fits embed in different shapes: {a.shape} vs {b.shape}"
    assert np.allclose(a, b, rtol=TOLERANCE, atol=TOLERANCE), (
        f"two fresh fits embed differently (max difference {np.abs(a - b).max():.3g})")


def check_rows_independent(embedder: Embedder | EmbedderUnderTest) -> None:
    """A text's vector does not depend on the other texts of the batch, nor on `progress`."""
    fitted = under_test(embedder).fitted()
    batch = _rows(fitted, HELD_OUT_TEXTS)
    for i, text in enumerate(HELD_OUT_TEXTS):
        alone = _rows(fitted, [text])[0]
        assert np.allclose(batch[i], alone, rtol=TOLERANCE, atol=TOLERANCE), (
            f"text {i} embeds differently alone than in a batch (max difference {np.abs(batch[i] - alone).max():.3g})")
    with_bar = _rows(fitted, HELD_OUT_TEXTS, progress=True)
    assert np.allclose(batch, with_bar, rtol=TOLERANCE, atol=TOLERANCE), "progress=True changed the vectors"


EMBEDDER_KIT = Kit(
    kind="embedder",
    checks=(check_init_stores_params_only, check_identity, check_embeddings, check_deterministic,
            check_rows_independent),
    accepts=lambda s: isinstance(s, (Embedder, EmbedderUnderTest)),
    prepare=under_test,
    owner=lambda subject: type(subject.embedder),
)
