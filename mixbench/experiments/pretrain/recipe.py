"""The recipe of mixbench's pretrained base: what it trains, for how long, and where it ships.

The base has the architecture of the byte-level GPT every text task trains from scratch (4
blocks, width 128, 4 heads, 257 byte tokens), so a fine-tuning cell costs what a scratch cell
costs; only its position table is longer (512, the paper's context, App. F Table 5), which adds
no FLOPs. Pretraining uses that model's own scratch settings (AdamW at 3e-3, 10 % linear
warm-up, cosine decay to 10 %: the text tasks' budgets) at 8 windows of 512 bytes a step,
the same 4,096 tokens a step as a champ cell. 500 steps fit the half hour this machine could
give it; a longer base is this recipe with more steps.
"""

from __future__ import annotations

from mixbench.config import TrainConfig
from mixbench.models.base_gpt import BASE_DIR

CONFIG = TrainConfig(steps=500, steps_per_round=100, batch_size=8, seq_len=512, lr=3e-3, eval_per_domain=32,
                     n_layer=4, n_head=4, n_embd=128, model="gpt", seed=0, device="cpu")
# The test replays these first steps of the recipe from the shipped slice of the corpus.
SLICE_STEPS = 8
# CPU kernels split their sums by thread, so a float result depends on the thread count: the
# recipe fixes it (the 2 cores it was run on) for its steps to replay bit for bit elsewhere.
THREADS = 2

RECIPE_FILE = BASE_DIR / "recipe.json"
SLICE_FILE = BASE_DIR / "corpus-slice.json.gz"
