"""stratified: sample every domain equally, whatever happens."""

from mixbench.mixture import Mixture
from mixbench.strategy import FixedMixtureStrategy, RunContext


class Stratified(FixedMixtureStrategy):
    """Uniform over domains every round (the paper's 'stratified' baseline); needs no signal."""

    source = "the stratified baseline of R&B (arXiv 2505.00358 §4) and Aioli (arXiv 2411.05735 §5)"

    def choose(self, ctx: RunContext) -> Mixture:
        return Mixture.uniform(ctx.num_domains)
