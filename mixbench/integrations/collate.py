"""Carrying each example's domain through a collate function to the model's forward.

The collator takes the domain label out of every example before the user's collate function sees
it (which then pads and stacks as usual) and adds the batch's domain ids as one tensor under
DOMAIN_IDS. Whatever runs the forward removes that key again before the model sees it (the
Trainer callback does so with a forward pre-hook; a plain loop pops it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from mixbench.integrations.domains import DomainIndex

DOMAIN_IDS = "mixbench_domain_ids"


class DomainCollator:
    """`collate(features)` with each feature's `column` turned into `batch[DOMAIN_IDS]`, a (B,)
    int64 tensor; features without the column are collated as they are."""

    def __init__(self, collate: Callable | None, column: str, domains: DomainIndex):
        if collate is None:
            from torch.utils.data import default_collate as collate
        self.collate, self.column, self.domains = collate, column, domains

    def __call__(self, features):
        if not features or not isinstance(features[0], Mapping) or self.column not in features[0]:
            return self.collate(features)
        labels = [feature[self.column] for feature in features]
        batch = self.collate([{k: v for k, v in feature.items() if k != self.column} for feature in features])
        batch[DOMAIN_IDS] = torch.as_tensor(self.domains.ids(labels, "batch"))
        return batch
