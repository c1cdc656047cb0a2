"""Per-example losses of a causal language model, for per-domain losses: the same next-token
cross-entropy a causal LM's own loss takes the mean of, kept per example."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100   # the label that marks a position as not scored (Hugging Face's convention)


def causal_lm_example_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """((B,) summed token loss, (B,) scored tokens) of each example; labels are the inputs, shifted
    here as a causal LM shifts them, IGNORE_INDEX where a position is not scored."""
    logits = logits[:, :-1].float()
    targets = labels[:, 1:].to(logits.device)
    token_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                 ignore_index=IGNORE_INDEX, reduction="none").view(targets.shape)
    scored = targets != IGNORE_INDEX
    return (token_loss * scored).sum(1), scored.sum(1)


def looks_like_causal_lm(model) -> bool:
    """True for Hugging Face causal LMs (GPT2LMHeadModel, LlamaForCausalLM, ...)."""
    name = type(model).__name__
    return name.endswith(("ForCausalLM", "LMHeadModel")) and not getattr(
        getattr(model, "config", None), "is_encoder_decoder", False)
