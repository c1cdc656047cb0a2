"""Helpers the checks share: random instances, a simplex maximiser, the mixture SGD trainer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mixbench.algorithms.rnb import UndefinedUpdate, balance_mixture, gram_matrix
from scipy.optimize import minimize
from scipy.special import xlogy

# ------------------------------------------------------------------------------- small math


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    w = np.exp(z - z.max())
    return w / w.sum()


def entropy(p: np.ndarray) -> float:
    return float(-xlogy(p, p).sum())  # xlogy gives 0·log 0 = 0


def random_psd(rng: np.random.Generator, m: int) -> np.ndarray:
    """A random PSD matrix: a Gram of m random vectors, rank anywhere from 1 to m + 2."""
    rank = int(rng.integers(1, m + 3))
    vectors = rng.normal(size=(m, rank)) * rng.lognormal(0.0, 1.0)
    return vectors @ vectors.T


def random_simplex(rng: np.random.Generator, m: int) -> np.ndarray:
    """Dirichlet with a random concentration, so both spread and peaked q are drawn."""
    return rng.dirichlet(np.full(m, rng.choice([0.3, 1.0, 3.0])))


def maximise_on_simplex(objective, gradient, starts: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Best point SLSQP finds for a smooth objective over the probability simplex, over the starts.

    An independent numerical answer: it knows nothing of any closed form being checked.
    """
    m = len(starts[0])
    constraint = {"type": "eq", "fun": lambda p: p.sum() - 1.0, "jac": lambda p: np.ones(m)}
    best_p, best_value = None, -np.inf
    for start in starts:
        fit = minimize(lambda p: -objective(p), start, jac=lambda p: -gradient(p), method="SLSQP",
                       bounds=[(0.0, 1.0)] * m, constraints=[constraint],
                       options={"ftol": 1e-15, "maxiter": 500})
        p = np.clip(fit.x, 0.0, None)
        p /= p.sum()
        value = objective(p)
        if value > best_value:
            best_p, best_value = p, value
    return best_p, best_value


def mean_and_spread(values) -> dict:
    """Mean, standard deviation and standard error of a list of per-seed numbers."""
    values = np.asarray(values, dtype=np.float64)
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "stderr": std / np.sqrt(values.size),
            "min": float(values.min()), "max": float(values.max())}


# ----------------------------------------------------------- multi-domain least squares by SGD


@dataclass
class DomainPools:
    """Training examples grouped by domain for a linear least-squares model y ≈ x·w.

    features (n, d), targets (n,), domain (n,) ints in [0, m). `eval_loss(w)` is the quantity
    the strategies compete on (the q-weighted evaluation loss).
    """

    features: np.ndarray
    targets: np.ndarray
    domain: np.ndarray
    num_domains: int

    def __post_init__(self):
        order = np.argsort(self.domain, kind="stable")  # contiguous domains make sampling cheap
        self.features, self.targets, self.domain = self.features[order], self.targets[order], self.domain[order]
        self.sizes = np.bincount(self.domain, minlength=self.num_domains)
        if np.any(self.sizes == 0):  # sampling it would silently read another domain's rows
            raise ValueError(f"domain(s) {np.flatnonzero(self.sizes == 0).tolist()} have no training examples")
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])


class FixedMixture:
    """A non-adaptive strategy: the same mixture every round (stratified, static)."""

    def __init__(self, p):
        self.p = np.asarray(p, dtype=np.float64)

    def start(self) -> np.ndarray:
        return self.p

    def update(self, grad_sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return self.p


class BalanceMixture:
    """R&B Balance through the project's own pure functions: G from this round's per-domain
    gradient sums and counts, then p = mixture_fn(G, q, λ). Undefined rounds keep p, as RnB does.

    `mixture_fn` defaults to algorithms.rnb.balance_mixture; a test swaps in a wrong formula.
    """

    def __init__(self, q, lam: float = 3.0, mixture_fn=balance_mixture):
        self.q, self.lam, self.mixture_fn = np.asarray(q, dtype=np.float64), lam, mixture_fn
        self.undefined_rounds = 0

    def start(self) -> np.ndarray:
        self.p = np.full(len(self.q), 1.0 / len(self.q))
        return self.p

    def update(self, grad_sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
        try:
            self.p = self.mixture_fn(gram_matrix(grad_sums, counts), self.q, self.lam)
        except UndefinedUpdate:
            self.undefined_rounds += 1
        return self.p


def train_least_squares(pools: DomainPools, strategy, eval_loss, *, rounds: int, steps_per_round: int,
                        batch: int, lr: float, rng: np.random.Generator) -> dict:
    """SGD on ½(x·w − y)² from w = 0; each batch draws domains from the strategy's mixture.

    Per round the gradient (the whole model is the final linear layer here) is summed by domain,
    with counts, and handed to the strategy at the round end: the R&B protocol of Alg. 1.
    Returns the final eval loss, its trajectory per round and the mixture per round.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is reported as inf, not warned
        return _train(pools, strategy, eval_loss, rounds, steps_per_round, batch, lr, rng)


def _train(pools, strategy, eval_loss, rounds, steps_per_round, batch, lr, rng) -> dict:
    m, d = pools.num_domains, pools.features.shape[1]
    w = np.zeros(d)
    p = strategy.start()
    losses, mixtures = [eval_loss(w)], [p.copy()]
    for _ in range(rounds):
        grad_sums, counts = np.zeros((m, d)), np.zeros(m)
        for _ in range(steps_per_round):
            dom = rng.choice(m, size=batch, p=p)
            rows = pools.offsets[dom] + (rng.random(batch) * pools.sizes[dom]).astype(np.int64)
            x, y = pools.features[rows], pools.targets[rows]         # (B, d), (B,)
            per_example = x * (x @ w - y)[:, None]                     # (B, d)
            np.add.at(grad_sums, dom, per_example)
            counts += np.bincount(dom, minlength=m)
            w = w - lr * per_example.mean(0)
        if not np.all(np.isfinite(w)):
            losses.append(np.inf)  # diverged: the run lost, whatever the strategy
            break
        p = strategy.update(grad_sums, counts)
        losses.append(eval_loss(w))
        mixtures.append(p.copy())
    return {"final_loss": float(losses[-1]), "losses": losses, "mixtures": mixtures}


# One SGD protocol for every comparison (convergence, regrouping): same steps, same measurement.
STEPS_PER_ROUND, BATCH, LAST_ROUNDS = 10, 16, 5
LR_TIMES_CURVATURE = 0.1  # lr = this / the largest eigenvalue of any group's E[x xᵀ]


def measured_eval_loss(pools: DomainPools, strategy, groups: LinearGroups, eval_weights, *, rounds: int,
                       lr: float | None, rng: np.random.Generator) -> float:
    """Train with the shared protocol and return the excess eval loss averaged over the ends of the
    last LAST_ROUNDS rounds (one SGD iterate is noisy; every strategy is measured the same way)."""
    if lr is None:
        lr = LR_TIMES_CURVATURE / np.linalg.eigvalsh(groups.second_moments()).max()
    result = train_least_squares(pools, strategy, groups.excess_eval_loss(eval_weights), rounds=rounds,
                                 steps_per_round=STEPS_PER_ROUND, batch=BATCH, lr=lr, rng=rng)
    return float(np.mean(result["losses"][-LAST_ROUNDS:]))


def loss_gap_margin(baseline_losses, method_losses) -> tuple[float, dict]:
    """How much lower the method's loss is than the baseline's, over seeds.

    Per seed gap = ln(L_baseline / L_method): > 0 when the method is lower, symmetric in the two
    (a 2× win and a 2× loss cancel) and free of each seed's loss scale. Margin = mean − 2·stderr
    (a one-sided ~97.5 % normal bound), so a win inside the seed noise does not count as a pass.
    A diverged run (inf/NaN loss) makes the margin NaN, which never passes.
    """
    baseline, method = np.asarray(baseline_losses, dtype=np.float64), np.asarray(method_losses, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        gaps = np.log(baseline / method)
    if not np.all(np.isfinite(gaps)):
        return float("nan"), {"diverged_or_undefined_seeds": int((~np.isfinite(gaps)).sum())}
    spread = mean_and_spread(gaps)
    spread["fold_lower_geometric_mean"] = float(np.exp(spread["mean"]))
    spread["seeds_method_lower"] = int((gaps > 0).sum())
    return spread["mean"] - 2.0 * spread["stderr"], spread


@dataclass
class LinearGroups:
    """Synthetic linear-regression groups: group z has x ~ N(mean_z, diag(scale_z²)) and
    y = x·w_z + N(0, noise²). Its population loss ½E(x·w − y)² is known in closed form, so eval
    losses are exact (no eval sampling noise)."""

    means: np.ndarray    # (G, d)
    scales: np.ndarray   # (G, d)
    optima: np.ndarray   # (G, d)
    noise: float

    def second_moments(self) -> np.ndarray:  # S_z = E[x xᵀ]  (G, d, d)
        return np.stack([np.diag(s ** 2) + np.outer(mu, mu) for mu, s in zip(self.means, self.scales)])

    def sample(self, rng: np.random.Generator, counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        group = np.repeat(np.arange(len(counts)), counts)
        x = self.means[group] + self.scales[group] * rng.normal(size=(group.size, self.means.shape[1]))
        y = np.einsum("nd,nd->n", x, self.optima[group]) + self.noise * rng.normal(size=group.size)
        return x, y, group

    def excess_eval_loss(self, weights: np.ndarray):
        """w ↦ Σ_z weights_z · ½ (w − w_z)ᵀ S_z (w − w_z) minus its minimum over w (≥ 0)."""
        moments = self.second_moments()
        hessian = np.einsum("g,gij->ij", weights, moments)
        best = np.linalg.solve(hessian, np.einsum("g,gij,gj->i", weights, moments, self.optima))

        def raw(w):
            diff = w - self.optima
            return float(weights @ (0.5 * np.einsum("gi,gij,gj->g", diff, moments, diff)))

        floor = raw(best)
        return lambda w: raw(w) - floor
