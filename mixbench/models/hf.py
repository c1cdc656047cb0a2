"""A Hugging Face causal LM from a local directory, behind the face the text workload expects:
`model(idx) -> logits (B, T, V)`, the output layer as `model.head`, `model.num_params()`, and a
tokenizer with `encode`, `vocab_size` and `eos_id`. Nothing is fetched from the hub.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from mixbench.errors import MixbenchError


class HFCausalLM(nn.Module):
    """Adapts a transformers causal LM to the trainer's face."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.head = model.get_output_embeddings()

    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def forward(self, idx):
        return self.model(input_ids=idx, use_cache=False).logits


class HFTokenizer:
    def __init__(self, tokenizer):
        self._tok = tokenizer
        self.vocab_size = len(tokenizer)
        self.eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False)


def load_causal_lm(path: Path):
    if not path.is_dir():
        raise MixbenchError(
            f"--model must be 'gpt' or a local directory with an HF causal LM; {path} is not a directory"
        )
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise MixbenchError("loading an HF model needs transformers: pip install transformers") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise MixbenchError(f"cannot load an HF causal LM from {path}: {str(exc).splitlines()[0]}") from None
    return HFCausalLM(model), HFTokenizer(tokenizer)
