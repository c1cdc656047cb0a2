"""A small CLIP-style dual encoder trained from scratch: the CPU default for image-text tasks.

Image tower: three 3×3 conv stages (the last two stride 2), global average pooling, LayerNorm.
Text tower: the GPT blocks of gpt.py over byte tokens; like CLIP, the caption's feature is
the hidden state at its end-of-text token (causal attention lets that token see the caption).
Both are projected into one embedding space and L2-normalised; a learned temperature scales
their cosine similarities.

`head` is the image projection: the final linear layer the gradient tap splits by domain.
The image side is where a mixture's domains differ most (the same caption words recur across
domains), and image→caption retrieval is what the evaluation scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mixbench.models.gpt import GPT, Block, GPTConfig


@dataclass(frozen=True)
class ClipConfig:
    # The caption tower. Its width n_embd is also the image tower's and the shared embedding's.
    text: GPTConfig = GPTConfig(seq_len=64, n_layer=2, n_head=2, n_embd=64)
    image_size: int = 32


class ImageEncoder(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        c = max(8, width // 4)
        self.stages = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), nn.GELU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * c, width, 3, stride=2, padding=1), nn.GELU(),
        )
        self.norm = nn.LayerNorm(width)

    def forward(self, images):  # (B, 3, S, S) -> (B, width)
        return self.norm(self.stages(images).mean(dim=(2, 3)))


class TextEncoder(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.seq_len, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)

    def forward(self, tokens, end):  # (B, T), (B,) index of each caption's end token -> (B, C)
        x = self.tok_emb(tokens) + self.pos_emb(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x[torch.arange(x.shape[0], device=x.device), end])


class DualEncoder(nn.Module):
    def __init__(self, cfg: ClipConfig):
        super().__init__()
        self.cfg = cfg
        width = cfg.text.n_embd
        self.image_encoder = ImageEncoder(width)
        self.text_encoder = TextEncoder(cfg.text)
        self.head = nn.Linear(width, width, bias=False)        # image projection (tapped)
        self.text_projection = nn.Linear(width, width, bias=False)
        # CLIP's initial temperature 0.07; the scale is capped at 100 as in CLIP.
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.apply(GPT._init_weights)
        for name, p in self.text_encoder.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.text.n_layer))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters()) - self.text_encoder.pos_emb.weight.numel()

    def encode_images(self, images):
        return F.normalize(self.head(self.image_encoder(images)), dim=-1)

    def encode_texts(self, tokens, end):
        return F.normalize(self.text_projection(self.text_encoder(tokens, end)), dim=-1)

    def scale(self):
        return self.logit_scale.exp().clamp(max=100.0)

    def forward(self, images, tokens, end):
        """(B, B) image→caption similarity logits."""
        return self.scale() * self.encode_images(images) @ self.encode_texts(tokens, end).t()
