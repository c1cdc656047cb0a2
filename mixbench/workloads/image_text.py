"""The image-text workload: a CLIP-style dual encoder trained with the symmetric InfoNCE loss.

Loss of a batch of B pairs: logits s_ij = τ·cos(image_i, caption_j); each image's row is a
classification over the B captions and each caption's column one over the B images; an
example's loss is the mean of its two terms. Captions that occur twice in a batch (templated
captions do) embed identically, so which copy an image should match is undecidable: the target
spreads evenly over every identical caption. That leaves the batch loss unchanged and gives each
pair a fair share of it, which is what the per-domain losses add up.

Evaluation scores the fixed eval subset as one batch: per-domain mean contrastive loss, and
zero-shot retrieval: each image picks the closest of the subset's distinct captions; top-1 is
right when it picks its own caption (chance is 1 / the number of distinct captions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from mixbench.config import TrainConfig
from mixbench.errors import MixbenchError
from mixbench.models.clip import ClipConfig, DualEncoder
from mixbench.models.gpt import GPTConfig
from mixbench.models.tokenizers import ByteTokenizer
from mixbench.task import Example
from mixbench.workloads.base import BatchLoss, Evaluation, Workload, evaluating, group_mean


@dataclass(frozen=True)
class ImageTextSplit:
    images: torch.Tensor       # (n, 3, S, S) uint8
    tokens: torch.Tensor       # (n, T) int64 caption bytes, end-of-text, then end-of-text padding
    ends: torch.Tensor         # (n,) int64 position of each caption's end-of-text token
    caption_ids: torch.Tensor  # (n,) int64: equal captions share an id
    domain_ids: torch.Tensor   # (n,) int64

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, rows: torch.Tensor) -> ImageTextSplit:
        return ImageTextSplit(self.images[rows], self.tokens[rows], self.ends[rows], self.caption_ids[rows],
                              self.domain_ids[rows])

    def batch(self, rows, device):
        """(images as floats in [-1, 1], tokens, ends, caption ids), on `device`."""
        images = self.images[rows].to(device).float().div_(127.5).sub_(1.0)
        return images, self.tokens[rows].to(device), self.ends[rows].to(device), self.caption_ids[rows].to(device)


def contrastive_row_losses(logits: torch.Tensor, caption_ids: torch.Tensor) -> torch.Tensor:
    """(B,) symmetric InfoNCE loss of each pair; identical captions are all positives."""
    same = (caption_ids[:, None] == caption_ids[None, :]).float()
    target = same / same.sum(1, keepdim=True)
    logits = logits.float()
    image_to_text = -(target * logits.log_softmax(dim=1)).sum(1)
    text_to_image = -(target * logits.t().log_softmax(dim=1)).sum(1)  # `same` is symmetric
    return (image_to_text + text_to_image) / 2


class ContrastiveImageText(Workload):
    def __init__(self, model: DualEncoder):
        self.model = model
        self.tokenizer = ByteTokenizer()
        self.tokens_per_example = _forward_flops_per_example(model) / (2 * model.num_params())

    @classmethod
    def build(cls, cfg: TrainConfig) -> ContrastiveImageText:
        if cfg.model != "clip":
            raise MixbenchError(f"an image-text task trains the 'clip' dual encoder; --model {cfg.model} is for "
                                "text tasks")
        if cfg.seq_len < 2:
            raise MixbenchError(f"seq-len must be at least 2 for captions, got {cfg.seq_len}")
        text = GPTConfig(seq_len=cfg.seq_len, n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd)
        return cls(DualEncoder(ClipConfig(text=text, image_size=cfg.image_size)))

    def encode(self, examples: list[Example], domains: tuple[str, ...]) -> ImageTextSplit:
        size, seq_len = self.model.cfg.image_size, self.model.cfg.text.seq_len
        index = {d: i for i, d in enumerate(domains)}
        n = len(examples)
        images = torch.empty((n, 3, size, size), dtype=torch.uint8)
        tokens = torch.full((n, seq_len), self.tokenizer.eos_id, dtype=torch.long)
        ends = torch.empty(n, dtype=torch.long)
        caption_index: dict[str, int] = {}
        caption_ids = torch.empty(n, dtype=torch.long)
        for row, ex in enumerate(examples):
            images[row] = _image_tensor(ex, size)
            ids = self.tokenizer.encode(ex.response)[: seq_len - 1]   # room for the end token
            tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            ends[row] = len(ids)
            caption_ids[row] = caption_index.setdefault(ex.response, len(caption_index))
        domain_ids = torch.tensor([index[ex.domain] for ex in examples], dtype=torch.long)
        return ImageTextSplit(images, tokens, ends, caption_ids, domain_ids)

    def loss(self, batch) -> BatchLoss:
        images, tokens, ends, caption_ids = batch
        row_loss = contrastive_row_losses(self.model(images, tokens, ends), caption_ids)
        return BatchLoss(loss=row_loss.mean(), row_loss=row_loss, row_weight=torch.ones_like(row_loss))

    @torch.no_grad()
    def evaluate(self, split: ImageTextSplit, num_domains: int, batch_size: int, device) -> Evaluation:
        with evaluating(self.model):
            image_emb, text_emb = [], []
            for start in range(0, len(split), batch_size):
                images, tokens, ends, _ = split.batch(slice(start, start + batch_size), device)
                image_emb.append(self.model.encode_images(images))
                text_emb.append(self.model.encode_texts(tokens, ends))
            image_emb, text_emb = torch.cat(image_emb), torch.cat(text_emb)
            caption_ids = split.caption_ids.to(device)
            row_loss = contrastive_row_losses(self.model.scale() * image_emb @ text_emb.t(), caption_ids)

            distinct, first = np.unique(split.caption_ids.numpy(), return_index=True)
            picked = (image_emb @ text_emb[torch.as_tensor(first, device=device)].t()).argmax(dim=1).cpu().numpy()
            correct = (distinct[picked] == split.caption_ids.numpy()).astype(np.float64)

        domains = split.domain_ids.numpy()
        return Evaluation(
            row_loss=row_loss.double().cpu().numpy(), row_weight=np.ones(len(split)), domain_ids=domains,
            num_domains=num_domains,
            metrics={"retrieval_top1": float(correct.mean()), "retrieval_chance": 1.0 / distinct.size},
            domain_metrics={"retrieval_top1": group_mean(correct, np.ones_like(correct), domains, num_domains)},
        )


def _image_tensor(example: Example, size: int) -> torch.Tensor:
    """(3, size, size) uint8 from the example's (H, W, 3) uint8 array, resized if needed."""
    image = example.image
    if image is None:
        raise MixbenchError(f"an image-text example of domain {example.domain!r} has no image")
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise MixbenchError(f"images must be (H, W, 3) uint8 arrays; one of domain {example.domain!r} is "
                            f"{array.dtype} {array.shape}")
    chw = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    if chw.shape[1:] == (size, size):
        return chw
    resized = F.interpolate(chw[None].float(), size=(size, size), mode="bilinear", antialias=True,
                            align_corners=False)
    return resized[0].round().clamp(0, 255).to(torch.uint8)


def _forward_flops_per_example(model: DualEncoder) -> float:
    """Counted, not estimated: one image and one full-length caption through both towers."""
    cfg = model.cfg
    images = torch.zeros(1, 3, cfg.image_size, cfg.image_size)
    tokens = torch.zeros(1, cfg.text.seq_len, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.encode_images(images)
        model.encode_texts(tokens, torch.tensor([cfg.text.seq_len - 1]))
    return float(counter.get_total_flops())
