"""digits: scikit-learn's handwritten digits as image-caption pairs (fast image-text tests).

Data: `sklearn.datasets.load_digits` (ships with scikit-learn, BSD-3-Clause; the UCI "Optical
Recognition of Handwritten Digits" test set): 1,797 8×8 grey images of the digits 0-9. Each
image becomes dark ink on white, RGB, with the caption "a handwritten digit <word>"; the ten
digits are the original domains. Zero-shot image→caption retrieval over the eval set is then
10-way digit recognition (chance 0.1).

Split per digit, seeded by `split_seed`: 80 % train, 20 % eval. The eval share is larger than the
paper tasks' 5 % so that retrieval accuracy is measured on about 360 images, not 90.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

import numpy as np
from mixbench.tasks import datafiles

from mixbench.config import TrainConfig
from mixbench.task import Example, Task, TaskData, TaskInfo

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(kw_only=True, eq=False)
class Digits(Task):
    """scikit-learn 8×8 handwritten digits with templated captions, 10 digits as domains (image-text)."""

    # A run takes about half a minute on 2 CPU cores.
    budget = TrainConfig(steps=200, steps_per_round=25, batch_size=64, seq_len=32, lr=3e-3, eval_per_domain=36,
                         n_layer=1, n_head=2, n_embd=32, model="clip", image_size=8)

    train_fraction: float = 0.8
    eval_fraction: float = 0.2
    split_seed: int = 0

    def info(self) -> TaskInfo:
        return TaskInfo(
            name="digits",
            description="scikit-learn 8×8 handwritten digits, captioned 'a handwritten digit <word>'",
            source="scikit-learn sklearn.datasets.load_digits (UCI optical recognition of handwritten digits)",
            license="BSD-3-Clause",
            version=f"scikit-learn-{importlib.metadata.version('scikit-learn')}",
            modality="image-text",
            original_domains=10,
        )

    def load(self) -> TaskData:
        from sklearn.datasets import load_digits

        datafiles.check_fractions("digits", self.train_fraction, self.eval_fraction)
        digits = load_digits()
        # Ink 0..16 -> paper white (255) to ink black (0), grey repeated over RGB.
        grey = (255 - np.rint(digits.images * (255 / 16))).astype(np.uint8)     # (n, 8, 8)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        examples = [Example(prompt="", response=f"a handwritten digit {WORDS[label]}", domain=f"digit-{label}",
                            image=image)
                    for image, label in zip(rgb, digits.target)]
        train, evaluation = datafiles.split_by_stratum(
            examples, lambda e: e.domain, train_fraction=self.train_fraction, eval_fraction=self.eval_fraction,
            seed=self.split_seed)
        return TaskData(train=train, eval=evaluation)
