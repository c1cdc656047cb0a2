"""The text workload: causal language modelling with the loss on response tokens only."""

from __future__ import annotations

import numpy as np
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
        """Token-weighted mean loss per domain over its response tokens."""
        was_training = self.model.training
        self.model.eval()
        loss_sum = torch.zeros(num_domains, dtype=torch.float64)
        tokens = torch.zeros(num_domains, dtype=torch.float64)
        for start in range(0, len(split), batch_size):
            rows = slice(start, start + batch_size)
            x, y = split.batch(rows, device)
            token_loss = self._token_loss(x, y)
            domains = split.domain_ids[rows]
            loss_sum.index_add_(0, domains, token_loss.sum(1).double().cpu())
            tokens.index_add_(0, domains, (y != IGNORE).sum(1).double().cpu())
        self.model.train(was_training)
        with np.errstate(invalid="ignore", divide="ignore"):
            return Evaluation(np.where(tokens.numpy() > 0, loss_sum.numpy() / tokens.numpy(), np.nan))

    def _token_loss(self, x, y):
        logits = self.model(x)  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                               ignore_index=IGNORE, reduction="none").view(y.shape)
