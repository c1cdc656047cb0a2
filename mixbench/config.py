"""The one configuration of a training run: budget, model size and optimiser settings.

A task declares its defaults as a `TrainConfig` (`Task.budget`); a run overrides some fields
(`task.budget.override(steps=30, seed=1)`). Every value is checked here, once, and a bad one is
a `ConfigError` naming the field as the command line spells it. The command line's options for
these fields are generated from the fields below (their `help` metadata), so `run` and `compare`
offer the same options with the same meaning.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

from mixbench.errors import MixbenchError

DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
# Seeds reach numpy's and scikit-learn's generators, which take unsigned 32-bit integers only.
SEED_MAX = 2**32 - 1
# The models trained from scratch learn one position embedding per token of the sequence, and
# attention costs its square: past this a run only allocates until the machine gives out. (An HF
# model's limit is its own position table, checked when it runs.)
SCRATCH_MODELS = ("gpt", "clip")
MAX_SCRATCH_SEQ_LEN = 8192
TAP_SUMS = ("auto", "exact", "sketched")


# Settings a model comes with, applied when a run chooses it (before the user's own options).
# smollm2 is the stand-in for the paper's GPT-Neo-125M: its fine-tuning settings (R&B App. F,
# Table 5: batch 16, context 512, AdamW at 5e-5). The paper states no schedule, warmup, weight
# decay or clipping: mixbench's defaults stay.
MODEL_PRESETS = {"smollm2": {"batch_size": 16, "seq_len": 512, "lr": 5e-5}}


class ConfigError(MixbenchError, ValueError):
    """A training setting that cannot work; the message names the option."""


def _setting(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    steps: int = _setting(300, "Optimiser steps.")
    steps_per_round: int = _setting(30, "K: optimiser steps between mixture updates.")
    batch_size: int = _setting(16, "Examples per optimiser step.")
    seq_len: int = _setting(256, "Tokens per example (text) or per caption (image-text).")
    lr: float = _setting(3e-3, "Peak learning rate (linear warmup, cosine decay to 10 %).")
    eval_per_domain: int = _setting(8, "Eval examples per original domain scored at round ends (a fixed subset).")
    n_layer: int = _setting(4, "Transformer blocks of the model trained from scratch.")
    n_head: int = _setting(4, "Attention heads per block.")
    n_embd: int = _setting(128, "Width of the model trained from scratch.")
    model: str = _setting("gpt", "'gpt' (text), 'clip' (image-text), 'smollm2' (SmolLM2-135M, pretrained; "
                                 "the paper's fine-tuning settings) or a local directory holding an HF causal LM.")
    image_size: int = _setting(32, "Image-text: pictures are resized to IMAGE_SIZE × IMAGE_SIZE.")
    seed: int = _setting(0, "Seed of the model's initialisation and of the batches drawn.")
    device: str = _setting("auto", "auto, cpu or cuda[:N].")
    weight_decay: float = _setting(0.1, "AdamW weight decay.")
    warmup_fraction: float = _setting(0.1, "Share of the steps spent warming the learning rate up.")
    grad_clip: float = _setting(1.0, "Gradient norm clipping threshold.")
    eval_every: int = _setting(1, "Evaluate every R rounds (the last round always; a strategy that reads eval "
                                  "losses still gets them every round).")
    tap_memory: float = _setting(1024.0, "MiB for the gradient tap's per-domain sums; past that they are sketched.")
    tap_sums: str = _setting("auto", "auto (exact if they fit --tap-memory, else sketched), exact (refuse if they "
                                     "do not fit) or sketched.")

    def __post_init__(self):
        for name in ("steps", "steps_per_round", "batch_size", "seq_len", "eval_per_domain", "n_layer", "n_head",
                     "n_embd", "image_size", "eval_every"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ConfigError(f"{option(name)} must be positive, got {value!r}")
        check_seed(self.seed)
        if self.steps_per_round > self.steps:
            raise ConfigError(f"steps-per-round ({self.steps_per_round}) is larger than steps ({self.steps})")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n-embd ({self.n_embd}) must be divisible by n-head ({self.n_head})")
        for name, low, high in (("lr", 0.0, math.inf), ("grad_clip", 0.0, math.inf), ("tap_memory", 0.0, math.inf)):
            value = getattr(self, name)
            if not (_is_real(value) and low < value < high):
                raise ConfigError(f"{option(name)} must be a positive number, got {value!r}")
        if not (_is_real(self.weight_decay) and 0 <= self.weight_decay < math.inf):
            raise ConfigError(f"weight-decay must be a non-negative number, got {self.weight_decay!r}")
        if not (_is_real(self.warmup_fraction) and 0 <= self.warmup_fraction < 1):
            raise ConfigError(f"warmup-fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"model must be a model name or a directory, got {self.model!r}")
        if self.model in SCRATCH_MODELS and self.seq_len > MAX_SCRATCH_SEQ_LEN:
            raise ConfigError(f"seq-len must be at most {MAX_SCRATCH_SEQ_LEN} for --model {self.model}, "
                              f"got {self.seq_len}")
        if self.tap_sums not in TAP_SUMS:
            raise ConfigError(f"tap-sums must be one of {', '.join(TAP_SUMS)}, got {self.tap_sums!r}")
        if not isinstance(self.device, str) or not DEVICE.match(self.device):
            raise ConfigError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")

    def override(self, **values) -> TrainConfig:
        """A copy with the given fields replaced; a value of None keeps the current one. Choosing
        a model with a preset (MODEL_PRESETS) sets its settings first, then the values given."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown training setting(s): {', '.join(map(option, unknown))}")
        given = {k: v for k, v in values.items() if v is not None}
        model = given.get("model")
        if model != self.model and model in MODEL_PRESETS:
            given = {**MODEL_PRESETS[model], **given}
        return dataclasses.replace(self, **given)

    @property
    def num_rounds(self) -> int:
        return -(-self.steps // self.steps_per_round)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """From `to_dict()` output; keys this version does not know are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def check_seed(value, name: str = "seed") -> int:
    """`value` if it is a seed every generator accepts (0 to 2**32 - 1), else a ConfigError: the
    one check behind every seed option (run, compare, regroup, theory)."""
    if not (_is_int(value) and 0 <= value <= SEED_MAX):
        raise ConfigError(f"{name} must be an integer from 0 to {SEED_MAX}, got {value!r}")
    return value


def option(name: str) -> str:
    """A field's name as the command line spells it: steps_per_round → steps-per-round."""
    return name.replace("_", "-")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
