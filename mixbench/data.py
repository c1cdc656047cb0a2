"""Tokenising examples into fixed-length causal-LM rows with the loss on the response only."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mixbench.task import Example

IGNORE = -100  # target id that cross_entropy skips


class ByteTokenizer:
    """UTF-8 bytes as tokens, plus one end-of-text id. Needs no files and no download."""

    vocab_size = 257
    eos_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class EncodedSplit:
    inputs: torch.Tensor       # (n, T) int64
    targets: torch.Tensor      # (n, T) int64, IGNORE on prompt and padding
    domain_ids: torch.Tensor   # (n,) int64, index into the run's domain tuple

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def subset(self, rows: torch.Tensor) -> EncodedSplit:
        return EncodedSplit(self.inputs[rows], self.targets[rows], self.domain_ids[rows])

    def batch(self, rows, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) of `rows`, each (B, T), on `device`."""
        return self.inputs[rows].to(device), self.targets[rows].to(device)


def encode_examples(
    examples: list[Example],
    domains: tuple[str, ...],
    tokenizer,
    seq_len: int,
    max_prompt_fraction: float = 0.5,
) -> EncodedSplit:
    """Encode each example as prompt tail + response head + EOS, cut to seq_len + 1 tokens.

    The prompt keeps its *end* (the question sits there) and may use at most
    `max_prompt_fraction` of the window, so every row keeps response tokens to learn from.
    """
    index = {d: i for i, d in enumerate(domains)}
    max_prompt = int(seq_len * max_prompt_fraction)
    n = len(examples)
    inputs = torch.full((n, seq_len), tokenizer.eos_id, dtype=torch.long)
    targets = torch.full((n, seq_len), IGNORE, dtype=torch.long)
    for row, ex in enumerate(examples):
        prompt = tokenizer.encode(ex.prompt)[-max_prompt:] if max_prompt > 0 else []
        response = tokenizer.encode(ex.response) + [tokenizer.eos_id]
        tokens = (prompt + response)[: seq_len + 1]
        x, y = tokens[:-1], tokens[1:]
        inputs[row, : len(x)] = torch.tensor(x, dtype=torch.long)
        y = torch.tensor(y, dtype=torch.long)
        # Position t predicts token t+1; it is a response target iff t+1 >= len(prompt).
        y[: max(len(prompt) - 1, 0)] = IGNORE
        targets[row, : len(y)] = y
    domain_ids = torch.tensor([index[ex.domain] for ex in examples], dtype=torch.long)
    return EncodedSplit(inputs, targets, domain_ids)
