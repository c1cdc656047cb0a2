"""Every registered embedder passes the embedder kit, parametrised over the registry so an
installed plugin is checked without touching this file; and the kit fails embedders that break
what Regroup relies on, each with its own message.

Measured here (2 busy CPU cores): the tfidf cases take about 0.4 s in all, the minilm ones about
3.5 s, nearly all of it the first load of the model (each check embeds with a fresh copy, which
reloads it, but from warm caches: 0.15 s).
"""

from __future__ import annotations

import numpy as np
import pytest

from mixbench import Embedder, registry
from mixbench.testing import EMBEDDER_KIT, check_embedder, parametrize_with_checks
from tests.minilm_model import minilm_model_files, prebuilt_minilm  # noqa: F401 - fixtures


@parametrize_with_checks({name: registry.embedders.create(name) for name in registry.embedders.names()})
def test_embedder_conforms(subject, check, prebuilt_minilm):  # noqa: F811 - the fixture
    check(subject)


def test_minilm_torch_backend_conforms():
    """The backend the int8 one replaced, kept for GPUs and as the reference, passes too."""
    pytest.importorskip("sentence_transformers")
    from mixbench.embedders.minilm import MiniLM

    check_embedder(MiniLM(backend="torch"))


def test_registry_has_the_builtins():
    assert {"minilm", "tfidf"} <= set(registry.embedders.names())


# -- the kit fails what breaks the contract ------------------------------------------------------


class CharHistogram(Embedder):
    """A small correct embedder: each text's characters counted into `dim` buckets, normalised."""

    def __init__(self, *, dim: int = 16):
        self.dim = dim

    def identity(self) -> str:
        return f"chars-{self.dim}"

    def embed(self, texts, progress=False):
        out = np.ones((len(texts), self.dim))
        for row, text in enumerate(texts):
            for char in text:
                out[row, ord(char) % self.dim] += 1
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


class DependsOnTheBatch(CharHistogram):
    """Centres the vectors on the batch mean: a text's vector changes with its neighbours."""

    def embed(self, texts, progress=False):
        x = super().embed(texts, progress)
        return x - x.mean(axis=0, keepdims=True)


class SlashInIdentity(CharHistogram):
    def identity(self) -> str:
        return f"chars/{self.dim}"


class Float64(CharHistogram):
    def embed(self, texts, progress=False):
        return super().embed(texts, progress).astype(np.float64)


class UnseededProjection(CharHistogram):
    """Draws a random projection at fit without a seed: two fits disagree."""

    def fit(self, texts):
        self.projection_ = np.random.default_rng().normal(size=(self.dim, self.dim))

    def embed(self, texts, progress=False):
        return (super().embed(texts, progress) @ self.projection_).astype(np.float32)


class IdentityChangesAtFit(CharHistogram):
    def fit(self, texts):
        self.seen_ = len(texts)

    def identity(self) -> str:
        return f"chars-{self.dim}-{getattr(self, 'seen_', 0)}"


class DependsOnProgress(CharHistogram):
    def embed(self, texts, progress=False):
        return super().embed(texts, progress) * (2.0 if progress else 1.0)


class StoresState(CharHistogram):
    def __init__(self, *, dim: int = 16):
        super().__init__(dim=dim)
        self.table = list(range(dim))


class NanForLongTexts(CharHistogram):
    def embed(self, texts, progress=False):
        x = super().embed(texts, progress)
        x[[len(t) > 1000 for t in texts]] = np.nan
        return x


class DropsARow(CharHistogram):
    def embed(self, texts, progress=False):
        x = super().embed(texts, progress)
        return x[:-1] if len(texts) > 1 else x


class Raises(CharHistogram):
    def embed(self, texts, progress=False):
        raise RuntimeError("model weights not found")


# (broken embedder, the kit's message, every check that fails)
BROKEN = [
    (DependsOnTheBatch, "rows_independent: text 0 embeds differently alone than in a batch", {"rows_independent"}),
    (SlashInIdentity, "identity: identity() 'chars/16' holds characters a file name cannot: ['/']", {"identity"}),
    (Float64, "embeddings: embed() returned float64, not float32", {"embeddings"}),
    (UnseededProjection, "deterministic: two fresh fits embed differently", {"deterministic"}),
    (IdentityChangesAtFit, "identity: fit() changed identity()", {"identity"}),
    (DependsOnProgress, "rows_independent: progress=True changed the vectors", {"rows_independent"}),
    (StoresState, "init_stores_params_only: __init__ stored ['table']", {"init_stores_params_only"}),
    # NaN is unequal to itself: the comparisons fail too.
    (NanForLongTexts, "embeddings: embed() returned non-finite values",
     {"embeddings", "deterministic", "rows_independent"}),
    (DropsARow, "embeddings: embed() of 4 texts gave shape (3, 16)",
     {"embeddings", "deterministic", "rows_independent"}),
    (Raises, "embeddings: embed() raised RuntimeError: model weights not found",
     {"embeddings", "deterministic", "rows_independent"}),
]


def _failed_checks(report: str) -> set[str]:
    """The checks a check_embedder report names, one per line after the first."""
    return {line.split(":")[0].strip() for line in report.splitlines()[1:]}


def test_a_correct_embedder_passes():
    check_embedder(CharHistogram())   # so each broken variant below fails for its own fault only


@pytest.mark.parametrize("cls, message, failing", BROKEN, ids=[cls.__name__ for cls, *_ in BROKEN])
def test_kit_rejects_a_broken_embedder(cls, message, failing):
    with pytest.raises(AssertionError) as info:
        check_embedder(cls())
    report = str(info.value)
    assert report.startswith("embedder failed conformance:") and message in report, report
    assert _failed_checks(report) == failing, report


def test_a_known_failure_is_expected_and_must_go_once_fixed():
    class Declared(Float64):
        known_check_failures = {"embeddings": "returns float64; casting would double the cache"}

    check_embedder(Declared())   # the declared failure is expected
    known = {test_id: reason for test_id, _, _, reason, _ in EMBEDDER_KIT.cases(Declared(), "declared")}
    assert known["declared-embeddings"] == Declared.known_check_failures["embeddings"]
    assert known["declared-identity"] is None

    class Fixed(CharHistogram):
        known_check_failures = {"embeddings": "no longer true"}

    with pytest.raises(AssertionError, match="embeddings: passes but is declared in known_check_failures"):
        check_embedder(Fixed())
