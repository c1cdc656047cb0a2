"""The text workload: causal language modelling with the loss on response tokens only.

Each example becomes one fixed-length row: prompt tail + response head + end-of-text; targets
are the next tokens, ignored on the prompt and the padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mixbench.config import TrainConfig
from mixbench.errors import MixbenchError
from mixbench.models import build_language_model
from mixbench.task import Example
from mixbench.workloads.base import BatchLoss, Evaluation, Workload, evaluating

IGNORE = -100  # target id that cross_entropy skips


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




class LanguageModelling(Workload):
    def __init__(self, model, tokenizer, seq_len: int):
        self.model, self.tokenizer, self.seq_len = model, tokenizer, seq_len
        # Every row is padded to seq_len tokens and costs them all.
        self.tokens_per_example = float(seq_len)

    @classmethod
    def build(cls, cfg: TrainConfig) -> LanguageModelling:
        if cfg.model == "clip":
            raise MixbenchError("--model clip is for image-text tasks; "
                                "a text task takes 'gpt', 'smollm2' or an HF model directory")
        model, tokenizer = build_language_model(cfg.model, seq_len=cfg.seq_len, n_layer=cfg.n_layer,
                                                n_head=cfg.n_head, n_embd=cfg.n_embd, regime=cfg.regime,
                                                trainable_blocks=cfg.trainable_blocks)
        return cls(model, tokenizer, cfg.seq_len)

    def encode(self, examples: list[Example], domains: tuple[str, ...]) -> EncodedSplit:
        return encode_examples(examples, domains, self.tokenizer, self.seq_len)

    def loss(self, batch) -> BatchLoss:
        x, y = batch
        token_loss = self._token_loss(x, y)                      # (B, T)
        row_loss, row_tokens = token_loss.sum(1), (y != IGNORE).sum(1)
        return BatchLoss(loss=row_loss.sum() / row_tokens.sum().clamp(min=1), row_loss=row_loss,
                         row_weight=row_tokens, token_loss=token_loss)

    @torch.no_grad()
    def evaluate(self, split: EncodedSplit, num_domains: int, batch_size: int, device) -> Evaluation:
        """Per row: summed loss over its response tokens and their number (token-weighted means)."""
        row_loss, row_tokens = [], []
        with evaluating(self.model):
            for start in range(0, len(split), batch_size):
                x, y = split.batch(slice(start, start + batch_size), device)
                row_loss.append(self._token_loss(x, y).sum(1).double().cpu())
                row_tokens.append((y != IGNORE).sum(1).double().cpu())
        return Evaluation(row_loss=torch.cat(row_loss).numpy(), row_weight=torch.cat(row_tokens).numpy(),
                          domain_ids=split.domain_ids.numpy(), num_domains=num_domains)

    def _token_loss(self, x, y):
        logits = self.model(x)  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                               ignore_index=IGNORE, reduction="none").view(y.shape)
