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
        # Past its position table a model indexes out of range (or silently extrapolates).
        self.max_seq_len = getattr(model.config, "max_position_embeddings", None)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def forward(self, idx):
        if self.max_seq_len is not None and idx.shape[-1] > self.max_seq_len:
            raise MixbenchError(f"--seq-len {idx.shape[-1]} is longer than this model's {self.max_seq_len} positions: "
                                f"use --seq-len {self.max_seq_len} or less")
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
    except Exception as exc:  # noqa: BLE001 - a corrupt, truncated or unsafe (pickled code) checkpoint
        raise MixbenchError(f"cannot load an HF causal LM from {path}: {_reason(exc)}") from None
    return HFCausalLM(model), HFTokenizer(tokenizer)


def _reason(exc: Exception) -> str:
    """Why a checkpoint did not load, in one line."""
    import pickle

    if isinstance(exc, pickle.UnpicklingError):   # torch's own text advises turning the safety off
        return ("its pickled checkpoint holds more than weights and is refused (only plain tensors are loaded); "
                "convert it to safetensors from a copy you trust")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no details'}"
