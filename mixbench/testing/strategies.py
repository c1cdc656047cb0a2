"""Conformance checks every MixingStrategy must pass — built-ins and plugins alike.

A subject is a strategy factory: the class, or any callable returning a fresh instance with the
hyperparameters to test. The checks drive it with synthetic round feedback the way the trainer
does (only the signals it declares are filled in) and a probe that answers from a seeded
generator. Use them through `mixbench.testing` (`check_strategy`, `parametrize_with_checks`).
"""

from __future__ import annotations

import copy
import functools
import pickle
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np

from mixbench.mixture import Mixture
from mixbench.probe import BatchLosses, FrozenModel, Probe, check_charge, check_weights
from mixbench.strategy import DomainGradients, MixingStrategy, RoundFeedback, RunContext, Signal, StepFeedback
from mixbench.testing.kit import Kit, assert_stores_params_only

Factory = Callable[[], MixingStrategy]

GRAD_DIM = 24          # length of the synthetic per-domain gradient vectors
ROUNDS = 5
STEPS_PER_ROUND = 4


def make_context(num_domains: int = 5, seed: int = 0) -> RunContext:
    rng = np.random.default_rng(1000 + num_domains)
    sizes = rng.integers(5, 200, size=num_domains)
    q = rng.random(num_domains) + 0.05
    return RunContext(
        domains=tuple(f"domain{i}" for i in range(num_domains)),
        train_sizes=sizes, eval_proportions=q / q.sum(),
        total_steps=ROUNDS * STEPS_PER_ROUND, steps_per_round=STEPS_PER_ROUND, seed=seed,
    )


def make_feedback(strategy: MixingStrategy, ctx: RunContext, round_index: int, mixture: Mixture,
                  rng: np.random.Generator, kind: str = "random") -> RoundFeedback:
    """Round feedback of one `kind`: "random", "zero" (all signals zero, no examples drawn) or
    "nonfinite" (NaN and inf in every signal)."""
    m = ctx.num_domains
    if kind == "random":
        counts = rng.multinomial(STEPS_PER_ROUND * 8, mixture.weights)
        sums = rng.normal(size=(m, GRAD_DIM)) * counts[:, None]
        eval_losses = rng.uniform(1, 5, size=m)
        train_losses = np.where(counts > 0, rng.uniform(1, 5, size=m), np.nan)
    elif kind == "zero":
        counts = np.zeros(m, dtype=np.int64)
        sums, eval_losses, train_losses = np.zeros((m, GRAD_DIM)), np.zeros(m), np.zeros(m)
    elif kind == "nonfinite":
        counts = np.full(m, 3, dtype=np.int64)
        sums = rng.normal(size=(m, GRAD_DIM))
        sums[0, 0], sums[-1, -1] = np.nan, np.inf
        eval_losses = np.full(m, np.nan)
        eval_losses[-1] = np.inf
        train_losses = np.full(m, np.inf)
    else:
        raise ValueError(f"unknown feedback kind {kind!r}")
    wants = strategy.signals
    return RoundFeedback(
        round_index=round_index, step=(round_index + 1) * ctx.steps_per_round, mixture=mixture,
        counts=counts,
        domain_gradients=DomainGradients(sums, counts.copy()) if Signal.DOMAIN_GRADIENTS in wants else None,
        eval_losses=eval_losses if Signal.EVAL_LOSSES in wants else None,
        train_losses=train_losses if Signal.TRAIN_LOSSES in wants else None,
    )


class SyntheticProbe(Probe):
    """A probe with the trainer's API that answers from a seeded generator instead of a model:
    eval losses, gradients and probe-training losses of the requested `kind`."""

    def __init__(self, num_domains: int, rng: np.random.Generator, kind: str = "random"):
        self.m, self.rng, self.kind = num_domains, rng, kind
        self.budget = 10_000
        self.charged = 0.0
        self.in_branch = False

    def charge(self, label: str, flops: float) -> None:
        check_charge(label, flops)
        self.charged += flops

    def _values(self, shape) -> np.ndarray:
        if self.kind == "zero":
            return np.zeros(shape)
        values = self.rng.uniform(1, 5, size=shape)
        if self.kind == "nonfinite":
            values.flat[0], values.flat[-1] = np.nan, np.inf
        return values

    def eval_losses(self) -> np.ndarray:
        return self._values(self.m)

    def gradient(self, domain=None) -> np.ndarray:
        return self._values(GRAD_DIM) - 3.0

    def gradients(self, sources) -> np.ndarray:
        assert len(sources) > 0 and all(s is None or 0 <= s < self.m for s in sources), "bad gradient sources"
        return np.stack([self.gradient(s) for s in sources])

    def train(self, mixture, steps: int, *, weigh=None, reference=None) -> list[float]:
        assert isinstance(mixture, Mixture) and len(mixture) == self.m, "probe.train needs a Mixture over the run"
        assert reference is None or isinstance(reference, FrozenModel), "reference must come from probe.freeze()"
        if weigh is not None:
            assert self.in_branch, "weighted steps are only allowed inside probe.branch()"
            for _ in range(steps):
                domains = self.rng.choice(self.m, size=8, p=mixture.weights)
                batch = BatchLosses(domains=domains, row_loss=self._values(8), row_weight=np.full(8, 4.0),
                                    reference_loss=self._values(8) if reference is not None else None)
                check_weights(weigh(batch), batch)
            return list(self._values(steps)) if steps else []
        if not self.in_branch:
            steps = min(steps, self.budget)
            self.budget -= steps
        return list(self._values(steps)) if steps else []

    def freeze(self) -> FrozenModel:
        return FrozenModel()

    @contextmanager
    def branch(self):
        assert not self.in_branch, "branches do not nest"
        self.in_branch = True
        try:
            yield
        finally:
            self.in_branch = False

    @property
    def steps_left(self) -> int:
        return self.budget


def drive(strategy: MixingStrategy, ctx: RunContext, rounds: int = ROUNDS, kind: str = "random",
          feedback_seed: int = 0, start: bool = True, mixture: Mixture | None = None) -> list[Mixture]:
    """Run `rounds` rounds as the trainer would; returns every mixture the strategy produced."""
    rng = np.random.default_rng(feedback_seed)
    probe = SyntheticProbe(ctx.num_domains, np.random.default_rng(feedback_seed + 1), kind)
    if start:
        mixture = _checked(ctx, "start", strategy.start, ctx)
        prepared = _called("prepare", strategy.prepare, probe)
        mixture = _checked(ctx, "prepare", lambda: prepared) if prepared is not None else mixture
    trajectory = [mixture]
    for r in range(rounds):
        for s in range(ctx.steps_per_round):
            step = StepFeedback(step=r * ctx.steps_per_round + s + 1, counts=rng.multinomial(8, mixture.weights),
                                loss=2.0)
            _called(f"observe_step of round {r}", strategy.observe_step, step)
        feedback = make_feedback(strategy, ctx, r, mixture, rng, kind)
        mixture = _checked(ctx, f"update of round {r} ({kind} feedback)", strategy.update, feedback, probe)
        trajectory.append(mixture)
    return trajectory


def _called(where: str, hook: Callable, *args):
    """hook(*args); an exception it raises is the strategy's failure, named by `where`."""
    try:
        return hook(*args)
    except Exception as exc:  # noqa: BLE001 - any exception from the strategy fails the check
        raise AssertionError(f"{where} raised {type(exc).__name__}: {exc}") from exc


def _checked(ctx: RunContext, where: str, hook: Callable, *args) -> Mixture:
    """hook(*args), if it returned a valid mixture over the run's domains."""
    p = _called(where, hook, *args)
    assert isinstance(p, Mixture), f"{where} returned {type(p).__name__}, not a Mixture"
    assert len(p) == ctx.num_domains, f"{where} returned {len(p)} weights for {ctx.num_domains} domains"
    w = p.weights
    assert np.all(np.isfinite(w)), f"{where} returned non-finite weights {w.tolist()}"
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-6, f"{where} returned weights off the simplex {w.tolist()}"
    return p


def _same(a: list[Mixture], b: list[Mixture]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x.weights, y.weights) for x, y in zip(a, b))


# -- the checks ---------------------------------------------------------------------------------

def check_init_stores_params_only(factory: Factory) -> None:
    """__init__ stores its keyword hyperparameters and nothing else; get_params round-trips."""
    strategy = factory()
    learned = [k for k in vars(strategy) if k.endswith("_")]
    assert not learned, f"__init__ set learned state {learned}; set it in start()"
    assert_stores_params_only(strategy)


def check_declared_signals(factory: Factory) -> None:
    """`signals` is a frozenset of Signal members."""
    signals = factory().signals
    assert isinstance(signals, frozenset) and all(isinstance(s, Signal) for s in signals), (
        f"signals must be a frozenset of mixbench.Signal, got {signals!r}"
    )


def check_valid_mixtures(factory: Factory) -> None:
    """start and every update return a finite probability vector over the run's domains."""
    for m in (2, 5, 9):
        drive(factory(), make_context(m))


def check_same_seed_same_trajectory(factory: Factory) -> None:
    """Same run seed and same feedback give the same mixtures."""
    ctx = make_context(6, seed=3)
    assert _same(drive(factory(), ctx), drive(factory(), ctx)), "two identical runs gave different mixtures"


def check_state_dict_round_trip(factory: Factory) -> None:
    """Resuming from state_dict (also after pickling) continues exactly as the original."""
    ctx = make_context(5)
    original = factory()
    head = drive(original, ctx, rounds=3)
    state = _called("state_dict() after 3 rounds", lambda: pickle.loads(pickle.dumps(original.state_dict())))
    resumed = factory()
    _called("load_state_dict", resumed.load_state_dict, state)
    tail_original = drive(original, ctx, rounds=3, feedback_seed=7, start=False, mixture=head[-1])
    tail_resumed = drive(resumed, ctx, rounds=3, feedback_seed=7, start=False, mixture=head[-1])
    assert _same(tail_original, tail_resumed), "a strategy resumed from state_dict() diverged"


def check_inputs_not_mutated(factory: Factory) -> None:
    """Neither the run context nor the round feedback is modified by the strategy."""
    ctx = make_context(4)
    strategy = factory()
    ctx_before = copy.deepcopy(ctx)
    mixture = _checked(ctx, "start", strategy.start, ctx)
    prepared = _called("prepare", strategy.prepare, SyntheticProbe(ctx.num_domains, np.random.default_rng(0)))
    mixture = _checked(ctx, "prepare", lambda: prepared) if prepared is not None else mixture
    rng = np.random.default_rng(0)
    for r in range(3):
        feedback = make_feedback(strategy, ctx, r, mixture, rng)
        before = copy.deepcopy(feedback)
        mixture = _checked(ctx, f"update of round {r} (random feedback)", strategy.update, feedback,
                           SyntheticProbe(ctx.num_domains, np.random.default_rng(r)))
        for name in ("counts", "eval_losses", "train_losses"):
            a, b = getattr(before, name), getattr(feedback, name)
            assert (a is None and b is None) or np.array_equal(a, b, equal_nan=True), f"feedback.{name} was modified"
        if before.domain_gradients is not None:
            assert np.array_equal(before.domain_gradients.sums, feedback.domain_gradients.sums, equal_nan=True)
            assert np.array_equal(before.domain_gradients.counts, feedback.domain_gradients.counts)
    for name in ("train_sizes", "eval_proportions"):
        assert np.array_equal(getattr(ctx_before, name), getattr(ctx, name)), f"context.{name} was modified"


def check_one_domain(factory: Factory) -> None:
    """A run with a single domain works and always samples it."""
    for p in drive(factory(), make_context(1)):
        assert p.weights.tolist() == [1.0]


def check_zero_feedback(factory: Factory) -> None:
    """All-zero signals and rounds with no examples give valid mixtures, never NaN."""
    drive(factory(), make_context(4), kind="zero")


def check_nonfinite_feedback(factory: Factory) -> None:
    """NaN and inf in the feedback give valid mixtures, never NaN."""
    drive(factory(), make_context(4), kind="nonfinite")


def owner(factory) -> type:
    """The strategy class a factory makes."""
    if isinstance(factory, type):
        return factory
    if isinstance(factory, functools.partial):
        return owner(factory.func)
    return type(factory())


STRATEGY_KIT = Kit(
    kind="strategy",
    checks=(check_init_stores_params_only, check_declared_signals, check_valid_mixtures,
            check_same_seed_same_trajectory, check_state_dict_round_trip, check_inputs_not_mutated,
            check_one_domain, check_zero_feedback, check_nonfinite_feedback),
    # A MixingStrategy class, or any other callable (a factory: a partial, a lambda).
    accepts=lambda s: issubclass(s, MixingStrategy) if isinstance(s, type) else callable(s),
    prepare=lambda factory: factory,
    owner=owner,
)
