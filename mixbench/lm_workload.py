"""The text workload: causal language modelling with the loss on response tokens only."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mixbench.data import IGNORE, EncodedSplit, encode_examples
from mixbench.errors import MixbenchError
from mixbench.models import build_model
from mixbench.task import Example
from mixbench.workload import BatchLoss, Evaluation, Workload


class LanguageModelling(Workload):
    def __init__(self, model, tokenizer, seq_len: int):
        self.model, self.tokenizer, self.seq_len = model, tokenizer, seq_len
        # Every row is padded to seq_len tokens and costs them all.
        self.tokens_per_example = float(seq_len)

    @classmethod
    def build(cls, *, model: str, seq_len: int, n_layer: int, n_head: int, n_embd: int, image_size: int):
        if model == "clip":
            raise MixbenchError("--model clip is for image-text tasks; "
                                "a text task takes 'gpt' or an HF model directory")
        built, tokenizer = build_model(model, seq_len=seq_len, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
        return cls(built, tokenizer, seq_len)

    def encode(self, examples: list[Example], domains: tuple[str, ...]) -> EncodedSplit:
        return encode_examples(examples, domains, self.tokenizer, self.seq_len)

    def loss(self, batch) -> BatchLoss:
        x, y = batch
        token_loss = self._token_loss(x, y)                      # (B, T)
        row_loss, row_tokens = token_loss.sum(1), (y != IGNORE).sum(1)
        return BatchLoss(loss=row_loss.sum() / row_tokens.sum().clamp(min=1), row_loss=row_loss,
                         row_weight=row_tokens)

    @torch.no_grad()
    def evaluate(self, split: EncodedSplit, num_domains: int, batch_size: int, device) -> Evaluation:
        """Per row: summed loss over its response tokens and their number (token-weighted means)."""
        was_training = self.model.training
        self.model.eval()
        row_loss, row_tokens = [], []
        for start in range(0, len(split), batch_size):
            x, y = split.batch(slice(start, start + batch_size), device)
            row_loss.append(self._token_loss(x, y).sum(1).double().cpu())
            row_tokens.append((y != IGNORE).sum(1).double().cpu())
        self.model.train(was_training)
        return Evaluation(row_loss=torch.cat(row_loss).numpy(), row_weight=torch.cat(row_tokens).numpy(),
                          domain_ids=split.domain_ids.numpy(), num_domains=num_domains)

    def _token_loss(self, x, y):
        logits = self.model(x)  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                               ignore_index=IGNORE, reduction="none").view(y.shape)
