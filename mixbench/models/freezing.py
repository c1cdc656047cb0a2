"""Which parameters train: `--trainable-blocks N` leaves only the last N transformer blocks, the
final norm and the output head trainable (a CPU-sized fine-tune of a large model).

The blocks are the model's longest nn.ModuleList (the GPT's `blocks`, a Llama's `layers`, a
GPT-2's `h`). A head tied to the input embedding (SmolLM2) trains with it: they are one tensor.
"""

from __future__ import annotations

import torch.nn as nn

from mixbench.errors import MixbenchError


def train_only_last(model: nn.Module, blocks: int) -> None:
    stacks = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not stacks:
        raise MixbenchError("--trainable-blocks: this model has no stack of blocks to choose from")
    stack = max(stacks, key=len)
    if blocks > len(stack):
        raise MixbenchError(f"--trainable-blocks {blocks} is more than the model's {len(stack)} blocks")
    for p in model.parameters():
        p.requires_grad_(False)
    trained = [*stack[len(stack) - blocks:], model.head, *_final_norms(model)]
    for module in trained:
        for p in module.parameters():
            p.requires_grad_(True)


def _final_norms(model: nn.Module) -> list[nn.Module]:
    """The norm right before the head (GPT `ln_f`, Llama `norm`), found by name."""
    return [m for name, m in model.named_modules() if name.split(".")[-1] in ("ln_f", "norm", "final_layernorm")]
