"""Model choice: the small GPT trained from scratch (default) or an HF causal LM from a local dir.

Both present the same face to the trainer: `model(idx) -> logits (B, T, V)`, the final
nn.Linear as `model.head`, `model.num_params()`, and a tokenizer with `encode`, `vocab_size`
and `eos_id`.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from mixbench.data import ByteTokenizer
from mixbench.errors import MixbenchError
from mixbench.model import GPT, GPTConfig


def build_model(spec: str, *, seq_len: int, n_layer: int, n_head: int, n_embd: int):
    """`spec` is "gpt" or a local directory holding an HF causal LM and its tokenizer."""
    if spec == "gpt":
        tokenizer = ByteTokenizer()
        cfg = GPTConfig(vocab_size=tokenizer.vocab_size, seq_len=seq_len,
                        n_layer=n_layer, n_head=n_head, n_embd=n_embd)
        return GPT(cfg), tokenizer
    return _load_hf(Path(spec))


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


def _load_hf(path: Path):
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
