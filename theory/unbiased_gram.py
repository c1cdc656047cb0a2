"""Beyond the paper — an unbiased Gram: Balance's G q without each domain's sampling noise.

Source: mixbench's extension (algorithms/rnb.py, gram_estimator="unbiased"). With ḡ_i the mean
of the n_i per-example gradients domain i drew in a round, the paper's G_ii = ‖ḡ_i‖² has
expectation ‖μ_i‖² + tr Σ_i / n_i (μ_i the domain's true gradient, Σ_i its per-example
covariance): the noise term inflates the diagonal of the domains drawn least, and G q favours
them. The unbiased estimator takes G_ii = ⟨ḡ_i^A, ḡ_i^B⟩ over two halves of the domain's
examples (independent: expectation ‖μ_i‖² exactly); off the diagonal, ⟨ḡ_i, ḡ_j⟩ of two
independent domains is unbiased already.

Problem (per instance): m = 6 domains with true gradients μ_i ∈ R^40 (a shared direction plus
a domain's own), per-example noise σ_i·N(0, I) with σ_i from 0.5 to 3, and n_i from 2 to 40
examples per round, halves alternating as the tap alternates them; q random on the simplex.
Each trial draws every domain's examples afresh and computes G q by the estimator under test
(`scores_fn(half_sums, half_counts, q)`, default algorithms.rnb.unbiased_balance_scores). Over
the trials, per domain: z = |mean estimate − (G_true q)_i| / standard error. Pass if every
z ≤ 5 (for an unbiased estimator z is |N(0, 1)|-like; 5 leaves 6e-7 per domain to chance);
worst_margin = 1 − max z / 5. The paper's estimator (algorithms.rnb.balance_scores on the full
sums) is measured beside it: its bias per domain, against the predicted q_i·σ_i²·D / n_i, is in
`details`. Passing `scores_fn` = the paper's estimator makes the check fail.
"""

from __future__ import annotations

import numpy as np
from mixbench.algorithms.rnb import balance_scores, unbiased_balance_scores
from mixbench.theory.check import CheckResult
from mixbench.theory.common import random_simplex

NAME = "unbiased_gram"
CLAIM = "G q from two halves per domain is unbiased; the paper's ‖ḡ_i‖² diagonal is biased by q_i·tr Σ_i/n_i"
DOMAINS, DIM = 6, 40
Z_LIMIT = 5.0


def paper_scores(half_sums, half_counts, q):
    """The paper's estimator from the same draws: the halves added back together."""
    return balance_scores(half_sums[0] + half_sums[1], half_counts[0] + half_counts[1], q)


def draw_halves(rng, means, sigmas, counts):
    """One round: each domain's examples, alternating between the two halves; their sums."""
    half_sums = np.zeros((2, len(means), means.shape[1]))
    half_counts = np.zeros((2, len(means)), dtype=np.int64)
    for i, (mu, sigma, n) in enumerate(zip(means, sigmas, counts)):
        examples = mu + sigma * rng.normal(size=(n, means.shape[1]))
        for half in (0, 1):
            half_sums[half, i] = examples[half::2].sum(0)
            half_counts[half, i] = len(examples[half::2])
    return half_sums, half_counts


def instance(rng):
    shared = rng.normal(size=DIM)
    means = 0.6 * shared + rng.normal(size=(DOMAINS, DIM)) * 0.5
    sigmas = rng.uniform(0.5, 3.0, DOMAINS)
    counts = rng.integers(2, 41, DOMAINS)
    return means, sigmas, counts, random_simplex(rng, DOMAINS)


def z_scores(estimates: np.ndarray, truth: np.ndarray) -> np.ndarray:
    error = np.abs(estimates.mean(0) - truth)
    return error / (estimates.std(0, ddof=1) / np.sqrt(len(estimates)))


def run(quick: bool, seed: int = 0, scores_fn=unbiased_balance_scores) -> CheckResult:
    rng = np.random.default_rng([seed, 7])
    instances, trials = (4, 400) if quick else (20, 4000)
    worst_z, paper_z, paper_bias, predicted_bias = 0.0, [], [], []
    for _ in range(instances):
        means, sigmas, counts, q = instance(rng)
        truth = (means @ means.T) @ q
        tested, paper = [], []
        for _ in range(trials):
            half_sums, half_counts = draw_halves(rng, means, sigmas, counts)
            tested.append(scores_fn(half_sums, half_counts, q))
            paper.append(paper_scores(half_sums, half_counts, q))
        tested, paper = np.array(tested), np.array(paper)
        worst_z = max(worst_z, float(z_scores(tested, truth).max()))
        paper_z.append(float(z_scores(paper, truth).max()))
        paper_bias.append((paper.mean(0) - truth).tolist())
        predicted_bias.append((q * sigmas ** 2 * DIM / counts).tolist())
    measured, predicted = np.array(paper_bias).ravel(), np.array(predicted_bias).ravel()
    return CheckResult(
        name=NAME, claim=CLAIM, instances=instances * trials, passed=bool(worst_z <= Z_LIMIT),
        worst_margin=1.0 - worst_z / Z_LIMIT,
        details={"pass_if": f"every domain's |mean estimate - true Gq| <= {Z_LIMIT:g} standard errors",
                 "worst_z_of_the_estimator_checked": worst_z,
                 "paper_estimator_worst_z": max(paper_z),
                 "paper_estimator_bias_over_predicted_q_sigma2_D_over_n": float(
                     np.median(measured / predicted)),
                 "trials_per_instance": trials},
    )
