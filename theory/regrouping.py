"""Claim 6 — regrouping: balancing k-means clusters beats balancing the given domain labels.

Source: paper Sec. 3.2 (Regroup, Alg. 2): given domains may mix semantically different data whose
gradients differ; re-partitioning by embedding similarity gives Balance domains it can tell apart.

Problem (per seed): 6 latent groups of linear regression, each with its own optimum, feature
scales and an 8-d embedding centre (embedding = centre + N(0, I), the stand-in for a sentence
embedding; centres orthogonal, 8 apart); the 3 given labels each mix two latent groups half and half. The eval set (600
examples) is drawn 90 % from one half of two of the given labels, so within a given label one half
helps and the other hurts. Two runs of the same SGD and the same R&B Balance (algorithms.rnb, λ = 3)
on the same training data, equal steps:
  • given labels: domains = the 3 labels, q = eval share per label;
  • regrouped: k-means on the training embeddings, k chosen by silhouette in 2..8 (the project's
    mixbench.regroup.clustering, scikit-learn underneath), eval examples assigned to the nearest training
    centroid (train first, then eval, as Regroup does), q = eval share per cluster.
Loss = exact excess eval loss, averaged over the last 5 rounds. Gap = ln(L_given / L_regrouped) per
seed; margin = mean − 2·stderr over seeds; pass if > 0. Regrouping does not win every seed (Balance
can still put weight on a cluster whose gradient aligns with the eval gradient but whose optimum
differs); the claim checked is the average. Stratified over the given
labels is reported for reference.

Override `regroup_fn=(train_embeddings, eval_embeddings, rng) -> (train_labels, eval_labels)`:
a broken assignment (e.g. random labels) makes the check fail.
"""

from __future__ import annotations

import numpy as np
from mixbench.theory.check import CheckResult
from mixbench.theory.common import (
    STEPS_PER_ROUND,
    BalanceMixture,
    DomainPools,
    FixedMixture,
    LinearGroups,
    loss_gap_margin,
    measured_eval_loss,
)

NAME = "regrouping"
CLAIM = "Balance on k-means regrouped domains beats Balance on the given mixed labels (Sec. 3.2)"
GIVEN, HALVES, DIM, EMBED_DIM = 3, 2, 8, 8
PER_GROUP, EVAL_SIZE = 250, 600
K_RANGE = range(2, 9)
CENTRE_DISTANCE = 8.0  # between any two latent groups' embedding centres; the noise is N(0, I)


def kmeans_regroup(train_embeddings, eval_embeddings, rng):
    """R&B Regroup: best-silhouette k-means on train, eval to the nearest train centroid."""
    from threadpoolctl import threadpool_limits

    from mixbench.regroup import regroup_vectors

    seed = int(rng.integers(1 << 30))
    with threadpool_limits(limits=1):  # tiny problems: OpenMP threads only spin, worse on a busy machine
        grouping = regroup_vectors(train_embeddings, eval_embeddings, list(K_RANGE), seed=seed,
                                   measured=("silhouette",))
    return grouping.train_labels, grouping.eval_labels


def make_problem(rng):
    latent = GIVEN * HALVES  # latent group z belongs to given label z // HALVES
    groups = LinearGroups(means=np.zeros((latent, DIM)), scales=rng.lognormal(0.0, 0.4, size=(latent, DIM)),
                          optima=rng.normal(size=DIM) + rng.normal(size=(latent, DIM)), noise=0.5)
    # orthogonal embedding centres, CENTRE_DISTANCE apart: separable latent groups, so the check is
    # about Balance on the recovered groups rather than about whether k-means finds them
    basis, _ = np.linalg.qr(rng.normal(size=(EMBED_DIM, latent)))
    centres = basis.T * (CENTRE_DISTANCE / np.sqrt(2.0))
    helpful = HALVES * rng.choice(GIVEN, size=2, replace=False)  # the first half of two given labels
    q_latent = 0.1 * rng.dirichlet(np.ones(latent))
    q_latent[helpful] += 0.9 * rng.dirichlet(np.ones(2))
    x, y, group = groups.sample(rng, np.full(latent, PER_GROUP))
    train_embeddings = centres[group] + rng.normal(size=(group.size, EMBED_DIM))
    eval_group = rng.choice(latent, size=EVAL_SIZE, p=q_latent)
    eval_embeddings = centres[eval_group] + rng.normal(size=(EVAL_SIZE, EMBED_DIM))
    return groups, q_latent, x, y, group, train_embeddings, eval_group, eval_embeddings


def shares(labels, num_domains) -> np.ndarray:
    return np.bincount(labels, minlength=num_domains) / len(labels)


def run(quick: bool, seed: int = 0, regroup_fn=kmeans_regroup) -> CheckResult:
    seeds, rounds = (8, 40) if quick else (30, 60)
    finals = {"regrouped": [], "given": [], "given_stratified": []}
    chosen_k = []
    for run_seed in range(seeds):
        rng = np.random.default_rng([seed, 6, run_seed])
        groups, q_latent, x, y, group, train_emb, eval_group, eval_emb = make_problem(rng)
        train_clusters, eval_clusters = regroup_fn(train_emb, eval_emb, rng)
        k = int(max(train_clusters.max(), eval_clusters.max())) + 1
        chosen_k.append(k)
        given = group // HALVES
        setups = {
            "regrouped": (DomainPools(x, y, train_clusters, k), BalanceMixture(shares(eval_clusters, k))),
            "given": (DomainPools(x, y, given, GIVEN), BalanceMixture(shares(eval_group // HALVES, GIVEN))),
            "given_stratified": (DomainPools(x, y, given, GIVEN), FixedMixture(np.full(GIVEN, 1.0 / GIVEN))),
        }
        for name, (pools, strategy) in setups.items():
            batches = np.random.default_rng([seed, 6, run_seed, 1])  # the same draws for every setup
            finals[name].append(measured_eval_loss(pools, strategy, groups, q_latent, rounds=rounds, lr=None,
                                                   rng=batches))
    finals = {k: np.asarray(v) for k, v in finals.items()}
    margin, spread = loss_gap_margin(finals["given"], finals["regrouped"])
    finite = bool(np.isfinite(margin))
    return CheckResult(
        name=NAME, claim=CLAIM, instances=seeds, passed=bool(finite and margin > 0),
        worst_margin=float(margin) if finite else float("nan"),
        details={"pass_if": "mean - 2*stderr over seeds of ln(L_given / L_regrouped) > 0",
                 "log_loss_ratio": spread,
                 "final_excess_eval_loss_mean": {k: float(v.mean()) for k, v in finals.items()},
                 "chosen_k": chosen_k, "latent_groups": GIVEN * HALVES,
                 "steps": rounds * STEPS_PER_ROUND},
    )
