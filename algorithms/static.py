"""static: sample domains in proportion to their training sizes (the natural mixture)."""

from mixbench.mixture import Mixture
from mixbench.strategy import FixedMixtureStrategy, RunContext


class Static(FixedMixtureStrategy):
    """Proportional to each domain's number of training examples, fixed for the whole run."""

    source = "proportional ('natural') sampling, a static baseline of R&B (arXiv 2505.00358 §4)"

    def choose(self, ctx: RunContext) -> Mixture:
        return Mixture.proportional(ctx.train_sizes)
