"""minilm's chunked mode: more of each example, as the normalised mean of its chunks' embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from embedders.minilm import MiniLM
from mixbench.errors import MixbenchError

LONG = " ".join(f"sentence {i} talks about topic {i % 7} and its properties in detail." for i in range(60))


@pytest.fixture(scope="module")
def embedder():
    return MiniLM(chunks=3)


def test_a_long_text_is_the_mean_of_its_first_chunks(embedder):
    chunks = embedder._chunk(LONG)
    assert len(chunks) == 3 and LONG.startswith(chunks[0]) and "".join(chunks) in LONG
    pieces = [embedder._model().tokenizer(c, add_special_tokens=False)["input_ids"] for c in chunks]
    assert all(len(p) <= embedder.max_tokens - 2 + 1 for p in pieces)   # a cut may split one piece
    expected = MiniLM().embed(chunks).mean(0)
    got = embedder.embed([LONG])[0]
    np.testing.assert_allclose(got, expected / np.linalg.norm(expected), atol=1e-5)
    assert not np.allclose(got, MiniLM().embed([LONG])[0], atol=1e-3)   # not the head alone


def test_a_short_text_is_embedded_as_in_the_head_mode(embedder):
    short = "a short example about triangles"
    np.testing.assert_allclose(embedder.embed([short]), MiniLM().embed([short]), atol=1e-5)


def test_the_cache_key_names_the_chunks_and_a_bad_count_is_refused():
    assert MiniLM().identity() != MiniLM(chunks=4).identity()
    with pytest.raises(MixbenchError, match="chunks must be at least 1"):
        MiniLM(chunks=0).embed(["x"])
