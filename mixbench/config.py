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

# Regimes: how a run's model starts (docs/concepts.md, "Regimes"). `scratch` trains the task's
# model from a random initialisation with the task's own budget; `finetune` starts the text
# tasks' byte GPT from mixbench's pretrained base (mixbench/models/base_gpt.py); `smollm2`
# fine-tunes SmolLM2-135M (the model's preset above).
REGIMES = ("scratch", "finetune", "smollm2")
# Fine-tuning settings of `finetune`, each with its source. Steps, batch and K stay the task's,
# so a fine-tuning cell costs what a scratch cell of the task costs (same model, same tokens).
#   lr: the paper fine-tunes GPT-Neo-125M at 5e-5 (R&B App. F, Table 5), 1/12 of the 6e-4 it was
#       pretrained at (EleutherAI/gpt-neo configs/gpt3_small_256.json; GPT-3 Table 2.1, "Small");
#       the same 1/12 of the base's pretraining lr (3e-3) is 2.5e-4.
#   warm-up: 3 % of the steps, then mixbench's cosine decay to 10 %: the warm-up ratio and cosine
#       schedule of Stanford Alpaca's fine-tuning recipe (the paper states neither).
#   context: at most 512, the paper's (App. F, Table 5) and the base's position table.
#   shape: the base's (a task that trains a smaller model from scratch, e.g. synthetic, fine-tunes
#       the base's 4 × 128).
FINETUNE_PRESET = {"lr": 2.5e-4, "warmup_fraction": 0.03, "n_layer": 4, "n_head": 4, "n_embd": 128}
BASE_CONTEXT = 512
# Fields added after checkpoints and results existed: at these values a run's identity leaves
# them out, so a checkpoint written before them still resumes.
LATER_DEFAULTS = {"regime": "scratch", "trainable_blocks": 0}


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
    regime: str = _setting("scratch", "How the model starts: scratch (random initialisation), finetune (the "
                                      "byte GPT from mixbench's pretrained base, with fine-tuning settings) or "
                                      "smollm2 (SmolLM2-135M, the paper's settings; same as --model smollm2).")
    trainable_blocks: int = _setting(0, "Train only the last N transformer blocks and the output head; 0 "
                                        "trains every parameter.")

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
        self._check_regime()

    def _check_regime(self) -> None:
        if self.regime not in REGIMES:
            raise ConfigError(f"regime must be one of {', '.join(REGIMES)}, got {self.regime!r}")
        if not _is_int(self.trainable_blocks) or self.trainable_blocks < 0:
            raise ConfigError(f"trainable-blocks must be 0 or more, got {self.trainable_blocks!r}")
        if (self.regime == "smollm2") != (self.model == "smollm2"):
            raise ConfigError(f"--regime {self.regime} does not go with --model {self.model}: --regime smollm2 "
                              "is --model smollm2")
        if self.regime == "finetune":
            if self.model != "gpt":
                raise ConfigError(f"--regime finetune starts the byte GPT from mixbench's base; --model "
                                  f"{self.model} cannot")
            if self.seq_len > BASE_CONTEXT:
                raise ConfigError(f"seq-len must be at most {BASE_CONTEXT} (the base's context) for --regime "
                                  f"finetune, got {self.seq_len}")
        if self.trainable_blocks and self.trainable_blocks > self.n_layer and self.model in SCRATCH_MODELS:
            raise ConfigError(f"trainable-blocks ({self.trainable_blocks}) is more than n-layer ({self.n_layer})")

    def override(self, **values) -> TrainConfig:
        """A copy with the given fields replaced; a value of None keeps the current one. Choosing
        a model with a preset (MODEL_PRESETS) sets its settings first, then the values given."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown training setting(s): {', '.join(map(option, unknown))}")
        given = {k: v for k, v in values.items() if v is not None}
        if given.get("regime") == "smollm2" and "model" not in given:
            given["model"] = "smollm2"   # the regime is the model
        if given.get("model") == "smollm2" and "regime" not in given:
            given["regime"] = "smollm2"
        model = given.get("model")
        if model != self.model and model in MODEL_PRESETS:
            given = {**MODEL_PRESETS[model], **given}
        regime = given.get("regime")
        if regime == "finetune" and self.regime != "finetune":
            # The task's own context, cut to the base's unless given.
            given = {**FINETUNE_PRESET, "seq_len": min(self.seq_len, BASE_CONTEXT), **given}
        return dataclasses.replace(self, **given)

    def identity(self) -> dict:
        """to_dict() less the fields added later, where they hold their defaults (LATER_DEFAULTS):
        what a run's checkpoint must match."""
        return {k: v for k, v in self.to_dict().items() if not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}

    @property
    def num_rounds(self) -> int:
        return -(-self.steps // self.steps_per_round)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """From `to_dict()` output; keys this version does not know are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in values.items() if k in names}
        if "regime" not in known and known.get("model") == "smollm2":   # written before regimes existed
            known["regime"] = "smollm2"
        return cls(**known)


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
