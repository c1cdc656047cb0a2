"""Claim 2 — the regularisation limits of the Balance update p(λ) = softmax(λ u), u = Gq/‖Gq‖₂.

Source: paper App. B.1 and Sec. 3 ("λ large → close to the argmax vertex; λ → 0 → uniform").
Three statements, each checked with a quantitative bound rather than "looks close":

(a) λ → 0 gives uniform. Since ‖u‖₂ = 1, every logit λu_i lies in [−λ, λ], so m·p_i ∈ [e^{−2λ}, e^{2λ}]
    and max_i |p_i − 1/m| ≤ (e^{2λ} − 1)/m. Margin = 1 − deviation / bound, at λ ∈ {1e-6, 1e-4, 1e-2}.
(b) λ → ∞ gives the argmax vertex of Gq. With i* = argmax u and gap Δ = u_(1) − u_(2) > 0,
    1 − p_{i*} = Σ_{k≠i*} e^{λ(u_k − u_{i*})} / Z ≤ (m − 1) e^{−λΔ}. Margin = 1 − (mass off i*) / bound,
    at λΔ ∈ {1, 5, 20, 50} (the last leaves less than 1e-21 off the vertex).
(c) The mixture entropy decreases monotonically in λ: H(p(λ)) = log Z − λ E_p[u], so
    dH/dλ = −λ Var_p(u) ≤ 0. Checked on a grid of 61 values of λ in [1e-3, 1e3]; margin =
    −(largest step-to-step increase of H) / log m.

Instances are random PSD G and q as in claim 1. Pass if every margin ≥ −1e-9 (floating-point
slack: for m = 2 bound (b) is tight up to a factor 1 + e^{−λΔ}); worst_margin is the minimum over all
three parts, each part's minimum is in details. Override
`mixture_fn=(G, q, lam) -> p` (default algorithms.rnb.balance_mixture) to check another formula.
"""

from __future__ import annotations

import numpy as np
from mixbench.algorithms.rnb import balance_mixture
from mixbench.theory.check import CheckResult
from mixbench.theory.common import entropy, random_psd, random_simplex

NAME = "limits"
CLAIM = "λ→0 gives uniform, λ→∞ the argmax vertex of Gq, entropy decreasing in λ (App. B.1)"
SMALL_LAMBDAS = (1e-6, 1e-4, 1e-2)
LAMBDA_TIMES_GAP = (1.0, 5.0, 20.0, 50.0)
ENTROPY_GRID = np.logspace(-3, 3, 61)
TOLERANCE = 1e-9


def small_lambda_margin(gram, q, mixture_fn) -> float:
    m = len(q)
    margins = []
    for lam in SMALL_LAMBDAS:
        deviation = np.abs(np.asarray(mixture_fn(gram, q, lam)) - 1.0 / m).max()
        margins.append(1.0 - deviation / (np.expm1(2.0 * lam) / m))
    return min(margins)


def large_lambda_margin(gram, q, mixture_fn) -> float | None:
    u = gram @ q / np.linalg.norm(gram @ q)
    top = np.sort(u)[::-1]
    gap = top[0] - top[1]
    if gap < 1e-9:  # tied argmax: the limit is not a vertex, no claim to check
        return None
    best = int(np.argmax(u))
    margins = []
    for scaled in LAMBDA_TIMES_GAP:
        p = np.asarray(mixture_fn(gram, q, scaled / gap))
        off_vertex = np.delete(p, best).sum()  # summed directly: 1 − p[best] would cancel to 0
        margins.append(1.0 - off_vertex / ((len(q) - 1) * np.exp(-scaled)))
    return min(margins)


def entropy_margin(gram, q, mixture_fn) -> float:
    entropies = np.array([entropy(np.asarray(mixture_fn(gram, q, lam))) for lam in ENTROPY_GRID])
    return float(-np.diff(entropies).max() / np.log(len(q)))


def run(quick: bool, seed: int = 0, mixture_fn=balance_mixture) -> CheckResult:
    rng = np.random.default_rng([seed, 2])
    instances = 25 if quick else 2000
    small, large, monotone = [], [], []
    for _ in range(instances):
        m = int(rng.integers(2, 9))
        gram, q = random_psd(rng, m), random_simplex(rng, m)
        if np.linalg.norm(gram @ q) < 1e-8:
            gram = gram + np.eye(m)
        small.append(small_lambda_margin(gram, q, mixture_fn))
        margin = large_lambda_margin(gram, q, mixture_fn)
        if margin is not None:
            large.append(margin)
        monotone.append(entropy_margin(gram, q, mixture_fn))
    worst = {"lambda_to_0": float(min(small)), "lambda_to_inf": float(min(large)),
             "entropy_monotone": float(min(monotone))}
    all_finite = all(np.isfinite(v) for v in worst.values())
    passed = all_finite and min(worst.values()) >= -TOLERANCE
    return CheckResult(
        name=NAME, claim=CLAIM, instances=instances, passed=bool(passed),
        worst_margin=float(min(worst.values())) if all_finite else float("nan"),
        details={"pass_if": f"every margin >= -{TOLERANCE:g}",
                 "worst_by_part": worst, "instances_with_a_unique_argmax": len(large)},
    )
