"""Claim 1 — the Balance update is the closed-form maximiser of an entropy-regularised objective.

Source: paper App. B.1 (restated in docs/concepts.md, "Balance"). For a PSD Gram G, eval
proportions q, step size η > 0 and λ > 0,

    f(p) = η qᵀG p − λ⁻¹ ‖η G q‖₂ Σ_i p_i log p_i          over the simplex Δ_m

is maximised by p* = softmax(λ · G q / ‖G q‖₂).

Derivation (ours, to state what is checked): f is strictly concave (linear plus a positive multiple
of the entropy), so its maximiser is unique and interior; the Lagrangian stationarity condition
η (Gq)_i − λ⁻¹‖ηGq‖(log p_i + 1) = μ gives log p_i = λ (Gq)_i / ‖Gq‖ + const, η cancelling.

Check: on random PSD G (ranks 1..m+2, random scale), random q, λ log-uniform in [0.05, 50] and
random η, compare f at `algorithms.rnb.balance_mixture` with the best of two independent
numerical maximisers that never see the closed form (L-BFGS over softmax logits from uniform, and
SLSQP on the simplex from q). Margin per instance = (f(p_closed) − f(p_numerical)) / (η‖Gq‖), the
objective gap in units of the objective's own scale; pass if the worst margin ≥ −1e-9 (the
numerical optimiser never beats the closed form beyond solver tolerance). The max ‖p − p*‖₁ is
reported too. Override `closed_form=(G, q, lam) -> p` to check another formula.
"""

from __future__ import annotations

import numpy as np
from mixbench.algorithms.rnb import balance_mixture
from mixbench.theory.check import CheckResult
from mixbench.theory.common import entropy, maximise_on_simplex, random_psd, random_simplex, softmax
from scipy.optimize import minimize

NAME = "closed_form"
CLAIM = "softmax(λGq/‖Gq‖) maximises ηqᵀGp − λ⁻¹‖ηGq‖Σp log p on the simplex (App. B.1)"
TOLERANCE = 1e-9


def objective(p, gram, q, eta, lam) -> float:
    """f(p) exactly as App. B.1 writes it (η kept, not simplified away)."""
    return float(eta * q @ gram @ p + np.linalg.norm(eta * gram @ q) / lam * entropy(p))


def objective_gradient(p, gram, q, eta, lam) -> np.ndarray:
    return eta * gram @ q - np.linalg.norm(eta * gram @ q) / lam * (np.log(np.maximum(p, 1e-300)) + 1.0)


def numerical_maximiser(gram, q, eta, lam) -> np.ndarray:
    """Best of L-BFGS over logits (interior, handles tiny p) and SLSQP on p directly."""
    m = len(q)

    def negative_on_logits(z):
        p = softmax(z)
        g = objective_gradient(p, gram, q, eta, lam)
        return -objective(p, gram, q, eta, lam), -(p * (g - p @ g))  # chain rule through softmax

    fit = minimize(negative_on_logits, np.zeros(m), jac=True, method="L-BFGS-B",
                   options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 2000})
    candidates = [softmax(fit.x)]
    slsqp_p, _ = maximise_on_simplex(lambda p: objective(p, gram, q, eta, lam),
                                     lambda p: objective_gradient(p, gram, q, eta, lam), [q.copy()])
    candidates.append(slsqp_p)
    return max(candidates, key=lambda p: objective(p, gram, q, eta, lam))


def run(quick: bool, seed: int = 0, closed_form=balance_mixture) -> CheckResult:
    rng = np.random.default_rng([seed, 1])
    instances = 25 if quick else 300
    margins, p_gaps = [], []
    for _ in range(instances):
        m = int(rng.integers(2, 9))
        gram, q = random_psd(rng, m), random_simplex(rng, m)
        if np.linalg.norm(gram @ q) < 1e-8:  # Gq = 0: the update is undefined, not a claim instance
            gram = gram + np.eye(m)
        lam, eta = float(np.exp(rng.uniform(np.log(0.05), np.log(50.0)))), float(rng.lognormal(0.0, 1.0))
        p_closed = np.asarray(closed_form(gram, q, lam), dtype=np.float64)
        p_num = numerical_maximiser(gram, q, eta, lam)
        scale = eta * np.linalg.norm(gram @ q)
        margins.append((objective(p_closed, gram, q, eta, lam) - objective(p_num, gram, q, eta, lam)) / scale)
        p_gaps.append(float(np.abs(p_closed - p_num).sum()))
    margins = np.asarray(margins)
    worst = float(margins.min()) if np.all(np.isfinite(margins)) else float("nan")
    return CheckResult(
        name=NAME, claim=CLAIM, instances=instances, passed=bool(worst >= -TOLERANCE), worst_margin=worst,
        details={"pass_if": f"min (f(closed) - f(numerical)) / (eta*||Gq||) >= -{TOLERANCE:g}",
                 "max_objective_gap": float(max(0.0, -margins.min())) if np.all(np.isfinite(margins)) else "nan",
                 "max_l1_gap_in_p": float(max(p_gaps)),
                 "instances_where_numerical_beat_closed": int((margins < -TOLERANCE).sum())},
    )
