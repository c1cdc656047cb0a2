"""Claim 5 — convergence: R&B's online mixture reaches a lower eval loss than stratified and static.

Source: paper Sec. 4 / App. B (the convergence analysis "justifies R&B's effectiveness compared to
non-adaptive mixing approaches", abstract); checked here on a synthetic multi-domain convex
problem rather than as a rate.

Problem (per seed): m = 6 domains of linear regression, each with its own optimum w_i and its own
feature scales; the eval mixture q puts 90 % of its mass on two domains that are scarce in the
training data (150 examples against 1,500), the common case of a rare target domain. All three
strategies train the same model with the same SGD (w = 0, batch 16, constant learning rate
0.1 / max eigenvalue of the domains' E[xxᵀ], T rounds of K = 10 steps, the same steps for all), through theory.common.train_least_squares:
  • stratified: uniform over domains; • static: proportional to domain sizes;
  • R&B: p_{t+1} = balance_mixture(gram_matrix(per-domain gradient sums, counts), q, λ = 3) —
    the project's own functions (algorithms.rnb), from this round's gradients, uniform p_0.
Loss = exact excess eval loss L_q(w) − min L_q, averaged over the ends of the last 5 rounds (one SGD
iterate is noisy; every strategy is measured the same way, at the same steps). Gap vs a baseline = (L_base − L_R&B) / L_base per
seed. Margin = mean − 2·stderr of the gap over seeds, the smaller over the two baselines; pass if
> 0. Gap mean ± std are reported.

Overrides: `mixture_fn` (a wrong Balance formula), `lr` (e.g. an over-large one: every strategy
diverges, nothing is "lower"), `lam`.
"""

from __future__ import annotations

import numpy as np

from algorithms.rnb import balance_mixture
from theory.check import CheckResult
from theory.common import (BalanceMixture, DomainPools, FixedMixture, LinearGroups, gap_margin,
                           train_least_squares)

NAME = "convergence"
CLAIM = "R&B's online mixture ends at lower eval loss than stratified and static at equal steps (SGD)"
NUM_DOMAINS, DIM = 6, 8
RARE, COMMON = 150, 1500
LAST_ROUNDS = 5
LR_TIMES_CURVATURE = 0.1  # lr = this / largest eigenvalue of any domain's E[x xᵀ]


def make_problem(rng):
    groups = LinearGroups(means=np.zeros((NUM_DOMAINS, DIM)),
                          scales=rng.lognormal(0.0, 0.4, size=(NUM_DOMAINS, DIM)),
                          optima=rng.normal(size=DIM) + rng.normal(size=(NUM_DOMAINS, DIM)),
                          noise=0.5)
    target = rng.choice(NUM_DOMAINS, size=2, replace=False)
    q = 0.1 * rng.dirichlet(np.ones(NUM_DOMAINS))
    q[target] += 0.9 * rng.dirichlet(np.ones(2))
    sizes = np.full(NUM_DOMAINS, COMMON)
    sizes[target] = RARE
    x, y, domain = groups.sample(rng, sizes)
    return DomainPools(x, y, domain, NUM_DOMAINS), groups, q


def run(quick: bool, seed: int = 0, mixture_fn=balance_mixture, lr: float | None = None,
        lam: float = 3.0) -> CheckResult:
    seeds = 4 if quick else 30
    rounds, steps_per_round, batch = (40, 10, 16) if quick else (60, 10, 16)
    finals = {"rnb": [], "stratified": [], "static": []}
    undefined = 0
    for run_seed in range(seeds):
        rng = np.random.default_rng([seed, 5, run_seed])
        pools, groups, q = make_problem(rng)
        eval_loss, hessian = groups.excess_eval_loss(q)
        step = lr if lr is not None else LR_TIMES_CURVATURE / np.linalg.eigvalsh(groups.second_moments()).max()
        strategies = {"rnb": BalanceMixture(q, lam, mixture_fn),
                      "stratified": FixedMixture(np.full(NUM_DOMAINS, 1.0 / NUM_DOMAINS)),
                      "static": FixedMixture(pools.sizes / pools.sizes.sum())}
        for name, strategy in strategies.items():
            run_rng = np.random.default_rng([seed, 5, run_seed, 1])  # same batches' randomness for all
            result = train_least_squares(pools, strategy, eval_loss, rounds=rounds, steps_per_round=steps_per_round,
                                         batch=batch, lr=step, rng=run_rng)
            # the end-of-round losses of the last rounds, averaged: one SGD iterate is noisy
            finals[name].append(float(np.mean(result["losses"][-LAST_ROUNDS:])))
            if name == "rnb":
                undefined += strategy.undefined_rounds
    finals = {k: np.asarray(v) for k, v in finals.items()}
    margins, spreads = {}, {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for baseline in ("stratified", "static"):
            gaps = (finals[baseline] - finals["rnb"]) / finals[baseline]
            margins[baseline], spreads[baseline] = gap_margin(gaps)
            spreads[baseline]["seeds_rnb_lower"] = int((gaps > 0).sum())
    worst = min(margins.values())
    finite = bool(np.isfinite(worst))
    return CheckResult(
        name=NAME, claim=CLAIM, instances=seeds, passed=bool(finite and worst > 0),
        worst_margin=float(worst) if finite else float("nan"),
        details={"pass_if": "mean - 2*stderr of the relative gap (L_base - L_rnb)/L_base > 0 for both baselines",
                 "relative_gap_vs": spreads,
                 "final_excess_eval_loss_mean": {k: float(v.mean()) for k, v in finals.items()},
                 "rnb_rounds_kept_previous_mixture": undefined,
                 "steps": rounds * steps_per_round, "rounds": rounds, "steps_per_round": steps_per_round,
                 "batch": batch, "lam": lam},
    )
