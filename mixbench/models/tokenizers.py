"""Tokenizers the models trained from scratch read: bytes, no vocabulary file, no download."""

from __future__ import annotations


class ByteTokenizer:
    """UTF-8 bytes as tokens, plus one end-of-text id."""

    vocab_size = 257
    eos_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
