"""stratified: sample every domain equally, whatever happens."""

from mixbench.mixture import Mixture
from mixbench.probe import Probe
from mixbench.strategy import MixingStrategy, RoundFeedback, RunContext, RunShape


class Stratified(MixingStrategy):
    """Uniform over domains every round (the paper's 'stratified' baseline); needs no signal."""

    def __init__(self):
        pass

    def start(self, ctx: RunContext) -> Mixture:
        self.mixture_ = Mixture.uniform(ctx.num_domains)
        return self.mixture_

    def update(self, feedback: RoundFeedback, probe: Probe) -> Mixture:
        return self.mixture_

    def paper_overhead_flops(self, shape: RunShape) -> float:
        return 0.0
