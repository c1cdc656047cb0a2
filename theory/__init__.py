"""theory: executable checks of the R&B paper's derivation and lemmas on synthetic convex problems.

Each claim of the paper (Ge et al., arXiv 2505.00358, App. B) is one module exposing
``run(quick, seed=0, **overrides) -> CheckResult``: it draws random instances, measures a margin,
and says pass or fail. Overrides exist so a test can feed a check a wrong formula or an over-large
learning rate and watch it fail. ``mixbench theory`` runs them all.
"""

from mixbench.theory.check import CHECKS, CheckResult, run_all

__all__ = ["CHECKS", "CheckResult", "run_all"]
