"""mixbench: a benchmark suite and library for data-mixture optimisation, built around R&B.

The public contract lives at this level: a strategy (`MixingStrategy`) meets the trainer through
its feedback types and a `Probe`; a task (`Task`) gives domain-labelled `Example`s and a default
`TrainConfig`; an `Embedder` turns texts into vectors for Regroup. Plugins of all three kinds are
found through the registries in `mixbench.registry` and checked by the kits in `mixbench.testing`.
"""

from mixbench.config import ConfigError, TrainConfig
from mixbench.embedder import Embedder
from mixbench.errors import MixbenchError
from mixbench.mixture import InvalidMixture, Mixture
from mixbench.plugin import Plugin
from mixbench.probe import Probe
from mixbench.strategy import (
    Capability,
    DomainGradients,
    FixedMixtureStrategy,
    MixingStrategy,
    RoundFeedback,
    RunContext,
    RunShape,
    Signal,
    StepFeedback,
)
from mixbench.task import Example, Task, TaskData, TaskDataError, TaskInfo

__version__ = "0.1.0"

__all__ = [
    "Capability", "ConfigError", "DomainGradients", "Embedder", "Example", "FixedMixtureStrategy", "InvalidMixture",
    "MixbenchError", "MixingStrategy", "Mixture", "Plugin", "Probe", "RoundFeedback", "RunContext", "RunShape",
    "Signal", "StepFeedback", "Task", "TaskData", "TaskDataError", "TaskInfo", "TrainConfig", "__version__",
]
