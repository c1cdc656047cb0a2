"""mixbench's pretrained base (`--regime finetune`): the text tasks' byte-level GPT, pretrained on
general English that no task evaluates on (WordNet glosses and the Python documentation; the
recipe, the corpus hashes and the licences are in weights/, `mixbench pretrain` rebuilds it).

It ships inside the package (weights/base.pt, about 3.7 MB), so a fine-tuning run needs no
download and no cache. Its position table holds `context` positions; a task's rows may be
shorter (its first positions are used) but not longer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from mixbench.errors import MixbenchError
from mixbench.models.gpt import GPT, GPTConfig

BASE_DIR = Path(__file__).resolve().parent / "weights"
BASE_FILE = BASE_DIR / "base.pt"
FORMAT = "mixbench-base"


def base_config(path: Path = BASE_FILE) -> GPTConfig:
    return GPTConfig(**_read(path)["config"])


def load_base(path: Path = BASE_FILE) -> GPT:
    """The pretrained base as a GPT (float32, in training mode)."""
    payload = _read(path)
    model = GPT(GPTConfig(**payload["config"]))
    model.load_state_dict(payload["state_dict"])
    return model


def save_base(model: GPT, path: Path) -> str:
    """Write `model` as a base file; returns the sha256 of its weights (weights_sha256)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save({"format": FORMAT, "config": vars_of(model.cfg), "state_dict": state}, path)
    return weights_sha256(state)


def weights_sha256(state: dict) -> str:
    """A hash of the weights' values (names, shapes, float32 bytes), independent of file layout."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous().float()
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def vars_of(cfg: GPTConfig) -> dict:
    return {"vocab_size": cfg.vocab_size, "seq_len": cfg.seq_len, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
            "n_embd": cfg.n_embd}


def _read(path: Path) -> dict:
    if not path.is_file():
        raise MixbenchError(f"--regime finetune: the pretrained base {path} is missing (reinstall mixbench, or "
                            "build it with `mixbench pretrain`)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file is one line, not torch's traceback
        raise MixbenchError(f"cannot read the pretrained base {path}: {type(exc).__name__}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MixbenchError(f"{path} is not a mixbench base")
    return payload


def load_based(*, seq_len: int, n_layer: int, n_head: int, n_embd: int, path: Path = BASE_FILE) -> GPT:
    """The base for a run whose settings ask for this architecture: refused in one line if they
    ask for another (the base has one shape) or for rows longer than its context."""
    model = load_base(path)
    cfg = model.cfg
    asked, has = (n_layer, n_head, n_embd), (cfg.n_layer, cfg.n_head, cfg.n_embd)
    if asked != has:
        raise MixbenchError(f"--regime finetune: the base has n-layer {has[0]}, n-head {has[1]}, n-embd {has[2]}; "
                            f"this run asks for {asked[0]}, {asked[1]}, {asked[2]}")
    if seq_len > cfg.seq_len:
        raise MixbenchError(f"--regime finetune: seq-len {seq_len} is longer than the base's context {cfg.seq_len}")
    return model
