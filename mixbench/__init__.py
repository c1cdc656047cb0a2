"""mixbench: a benchmark suite and library for data-mixture optimisation, built around R&B."""

from mixbench.errors import MixbenchError
from mixbench.mixture import InvalidMixture, Mixture
from mixbench.probe import Probe
from mixbench.strategy import (
    DomainGradients,
    MixingStrategy,
    RoundFeedback,
    RunContext,
    Signal,
    StepFeedback,
)

__version__ = "0.1.0"

__all__ = [
    "DomainGradients", "InvalidMixture", "MixbenchError", "MixingStrategy", "Mixture", "Probe",
    "RoundFeedback", "RunContext", "Signal", "StepFeedback", "__version__",
]
