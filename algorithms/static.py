"""static: sample domains in proportion to their training sizes (the natural mixture)."""

from mixbench.mixture import Mixture
from mixbench.probe import Probe
from mixbench.strategy import MixingStrategy, RoundFeedback, RunContext, RunShape


class Static(MixingStrategy):
    """Proportional to each domain's number of training examples, fixed for the whole run."""

    def __init__(self):
        pass

    def start(self, ctx: RunContext) -> Mixture:
        self.mixture_ = Mixture.proportional(ctx.train_sizes)
        return self.mixture_

    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        return self.mixture_

    def paper_overhead_flops(self, shape: RunShape) -> float:
        return 0.0
