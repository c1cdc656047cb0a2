"""What the shared trainer trains, one workload per task modality (see base.py for the face)."""

from __future__ import annotations

from mixbench.config import TrainConfig
from mixbench.errors import MixbenchError
from mixbench.workloads.base import BatchLoss, Evaluation, Split, Workload, group_mean
from mixbench.workloads.image_text import ContrastiveImageText
from mixbench.workloads.text import LanguageModelling

WORKLOADS: dict[str, type[Workload]] = {"text": LanguageModelling, "image-text": ContrastiveImageText}


def build_workload(modality: str, cfg: TrainConfig) -> Workload:
    """The workload of a task modality, its model built from `cfg` (whose model is checked against it)."""
    if modality not in WORKLOADS:
        raise MixbenchError(f"no workload for task modality {modality!r}; known: {', '.join(WORKLOADS)}")
    return WORKLOADS[modality].build(cfg)


__all__ = ["BatchLoss", "ContrastiveImageText", "Evaluation", "LanguageModelling", "Split", "WORKLOADS", "Workload",
           "build_workload", "group_mean"]
