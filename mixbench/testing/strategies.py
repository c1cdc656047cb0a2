"""Conformance checks every MixingStrategy must pass — built-ins and plugins alike.

A subject is a strategy factory: the class, or any callable returning a fresh instance with the
hyperparameters to test. A class is checked at its defaults and at each variant it declares
(`variants`: rnb's unbiased Gram reads other signals than its default); a factory (a partial, a
lambda) as it is given. The checks drive the strategy through the engine's own RoundDriver on a
synthetic run (mixbench.testing.synthetic_run): its feedback is built by the code that builds it
in training, from exactly the signals it declares, and its probe serves only the calls it
declares. Which checks apply follows from the declarations too (a check of probe steps, say, only
for a strategy that takes them). Use them through `mixbench.testing` (`check_strategy`,
`parametrize_with_checks`).
"""

from __future__ import annotations

import copy
import functools
import io
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from mixbench.mixture import Mixture
from mixbench.strategy import Capability, MixingStrategy, RunContext, Signal
from mixbench.testing.kit import Check, Kit, assert_stores_params_only
from mixbench.testing.synthetic_run import HIDDEN, VOCAB, Batch, SyntheticRun, on_one_thread
from mixbench.testing.watched import first_difference

Factory = Callable[[], MixingStrategy]

ROUNDS = 5
STEPS_PER_ROUND = 4
GRADIENT_SIGNALS = frozenset({Signal.DOMAIN_GRADIENTS, Signal.DOMAIN_GRADIENT_HALVES})


def make_context(num_domains: int = 5, seed: int = 0, *, rounds: int = ROUNDS,
                 steps_per_round: int = STEPS_PER_ROUND, total_steps: int | None = None) -> RunContext:
    """A run over `num_domains` domains of random sizes and eval shares, `rounds` rounds long
    unless `total_steps` says otherwise."""
    rng = np.random.default_rng(1000 + num_domains)
    sizes = rng.integers(5, 200, size=num_domains)
    q = rng.random(num_domains) + 0.05
    return RunContext(
        domains=tuple(f"domain{i}" for i in range(num_domains)),
        train_sizes=sizes, eval_proportions=q / q.sum(),
        total_steps=rounds * steps_per_round if total_steps is None else total_steps,
        steps_per_round=steps_per_round, seed=seed,
    )


def run_through(factory: Factory, ctx: RunContext, **options) -> SyntheticRun:
    """A synthetic run of a fresh strategy from start to end (options as SyntheticRun's)."""
    run = SyntheticRun(factory(), ctx, **options)
    run.begin()
    run.run()
    return run


# -- variants -------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Variant:
    """A strategy class at one of the settings it declares in `variants`: a factory, checked
    besides the class at its defaults."""

    cls: type
    name: str
    params: Mapping

    def __call__(self) -> MixingStrategy:
        return self.cls(**self.params)

    def __repr__(self) -> str:
        return f"{self.cls.__name__}[{self.name}]"


def variants_of(factory) -> list[tuple[str | None, Factory]]:
    """A class at its defaults, then at each variant it declares; any other factory as given.
    Declarations of the wrong shape are left to check_declared_variants to report."""
    declared = getattr(factory, "variants", None) if isinstance(factory, type) else None
    ways: list[tuple[str | None, Factory]] = [(None, factory)]
    if isinstance(declared, Mapping):
        ways += [(name, Variant(factory, name, params)) for name, params in declared.items()
                 if isinstance(name, str) and isinstance(params, Mapping)]
    return ways


def variant_problem(cls: type, name, params) -> str | None:
    """Why a declared variant cannot be checked, in a phrase; None if it constructs and passes
    check_params."""
    if not isinstance(name, str) or not name or any(c in name for c in "[] "):
        return "its name must be a non-empty string without brackets or spaces (it names test ids)"
    if not isinstance(params, Mapping):
        return f"its hyperparameters are a {type(params).__name__}, not a dict"
    try:
        cls(**params).check_params()
    except Exception as exc:  # noqa: BLE001 - whatever the class raises is the reason
        return f"{cls.__name__}(**{dict(params)!r}) raised {type(exc).__name__}: {exc}"
    return None


# -- which checks apply -----------------------------------------------------------------------------

def applies_if(rule: Callable[[Factory], bool], otherwise: str):
    """Mark a check that applies only to the factories for which `rule` holds; `otherwise` says
    why it does not apply to the others."""
    def mark(check: Check) -> Check:
        check.applies_if, check.otherwise = rule, otherwise
        return check
    return mark


def declares(need: Signal | Capability, *more: Signal | Capability) -> Callable[[Factory], bool]:
    """The rule "the strategy declares one of these" (in `signals` or `capabilities`)."""
    def rule(factory: Factory) -> bool:
        strategy = factory()
        return any(n in (strategy.signals if isinstance(n, Signal) else strategy.capabilities) for n in (need, *more))
    return rule


def does_not_apply(factory, check: Check) -> str | None:
    """Why `check` is not run on `factory`: a variant that cannot be built, or a check that only
    applies to other declarations (see `applies_if`); None if it runs."""
    if isinstance(factory, Variant):
        problem = variant_problem(factory.cls, factory.name, factory.params)
        if problem is not None:   # reported once, by check_declared_variants at the defaults
            return f"variant {factory.name!r} cannot be checked (see declared_variants): {problem}"
    rule = getattr(check, "applies_if", None)
    try:
        return None if rule is None or rule(factory) else check.otherwise
    except Exception:  # noqa: BLE001 - a strategy whose declarations cannot be read: the check runs, and fails
        return None


# -- the checks -------------------------------------------------------------------------------------

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


def check_declared_capabilities(factory: Factory) -> None:
    """`capabilities` is a frozenset of Capability members."""
    capabilities = factory().capabilities
    assert isinstance(capabilities, frozenset) and all(isinstance(c, Capability) for c in capabilities), (
        f"capabilities must be a frozenset of mixbench.Capability, got {capabilities!r}"
    )


@applies_if(lambda factory: not isinstance(factory, Variant), "variants are checked with the class at its defaults")
def check_declared_variants(factory: Factory) -> None:
    """`variants` maps names to hyperparameter settings that construct the strategy and pass its
    check_params."""
    strategy = factory()
    variants = strategy.variants
    assert isinstance(variants, Mapping), f"variants must be a dict of name -> hyperparameters, got {variants!r}"
    problems = [f"variant {name!r}: {problem}" for name, params in variants.items()
                if (problem := variant_problem(type(strategy), name, params)) is not None]
    assert not problems, "; ".join(problems)


def check_valid_mixtures(factory: Factory) -> None:
    """start and every update return a finite probability vector over the run's domains."""
    for m in (2, 5, 9):
        run_through(factory, make_context(m))


def check_same_seed_same_trajectory(factory: Factory) -> None:
    """Same run seed and same batches give the same mixtures."""
    ctx = make_context(6, seed=3)
    assert _same(run_through(factory, ctx).mixtures, run_through(factory, ctx).mixtures), (
        "two identical runs gave different mixtures")


def check_state_dict_round_trip(factory: Factory) -> None:
    """A run resumed inside a round from what a checkpoint holds — the driver's state (the
    strategy's own, the mixture, the round's sums so far) through a checkpoint file, the sampler's
    and the loop's — continues exactly as the original."""
    ctx = make_context(5, steps_per_round=6, rounds=4)
    original = SyntheticRun(factory(), ctx)
    original.begin()
    original.run(stop_at=15)
    where = f"state_dict() in round {original.round_index} (step {original.step})"
    state = original.strategy.called(where, lambda: _checkpointed(original.state_dict()))
    resumed = SyntheticRun(factory(), ctx)
    resumed.strategy.called(f"load_state_dict of {where}", resumed.load_state_dict, state)
    seen = len(original.strategy.feedbacks)
    tail_original, tail_resumed = original.run(), resumed.run()
    for a, b in zip(original.strategy.feedbacks[seen:], resumed.strategy.feedbacks):
        differs = first_difference(a, b)
        assert differs is None, (f"the run resumed from {where} gave update of round {a.round_index} another "
                                 f"feedback.{differs} than the original")
    assert _same(tail_original, tail_resumed), f"a strategy resumed from {where} diverged"


def check_inputs_not_mutated(factory: Factory) -> None:
    """Neither the run context nor the round feedback is modified by the strategy."""
    ctx = make_context(4)
    before = copy.deepcopy(ctx)
    run_through(factory, ctx, watch_inputs=True)
    for name in ("train_sizes", "eval_proportions"):
        assert np.array_equal(getattr(before, name), getattr(ctx, name)), f"the strategy modified context.{name}"


def check_one_domain(factory: Factory) -> None:
    """A run with a single domain works and always samples it."""
    for p in run_through(factory, make_context(1)).mixtures:
        assert p.weights.tolist() == [1.0], f"a run over one domain got the mixture {p.weights.tolist()}"


def check_zero_feedback(factory: Factory) -> None:
    """All-zero signals and rounds with no examples give valid mixtures, never NaN."""
    run_through(factory, make_context(4), kind="zero")


def check_nonfinite_feedback(factory: Factory) -> None:
    """NaN and inf in the activations (so the gradients and train losses) and in the eval losses
    give valid mixtures, never NaN."""
    run_through(factory, make_context(4), kind="nonfinite")


@applies_if(declares(Capability.PROBE_STEPS), "only for strategies that declare Capability.PROBE_STEPS")
def check_probe_steps_within_budget(factory: Factory) -> None:
    """When the run's budget runs out during its probe steps (in prepare, then in an update),
    probe.train returns fewer losses than asked, and the strategy goes on returning valid
    mixtures and stops asking: it never trains past probe.steps_left."""
    for total_steps in (3, 7):
        run = run_through(factory, make_context(5, steps_per_round=2, total_steps=total_steps))
        assert run.step <= total_steps, f"the run trained {run.step} steps on a budget of {total_steps}"


@applies_if(declares(*GRADIENT_SIGNALS), "only for strategies that declare Signal.DOMAIN_GRADIENTS")
def check_domain_gradients_from_the_tap(factory: Factory) -> None:
    """Each update's domain gradients are the tap's: per domain, the head's weight gradient
    summed over that domain's examples of the round and its count; with
    Signal.DOMAIN_GRADIENT_HALVES also over two halves of each domain's examples, which add up to
    them."""
    run = run_through(factory, make_context(5))
    halves = Signal.DOMAIN_GRADIENT_HALVES in run.strategy.signals
    for feedback in run.strategy.feedbacks:
        where = f"update of round {feedback.round_index}"
        grads = feedback.domain_gradients
        assert grads is not None, f"{where} got no domain gradients"
        sums, counts = _domain_sums(run, run.rounds[feedback.round_index])
        assert np.array_equal(grads.counts, counts) and np.array_equal(feedback.counts, counts), (
            f"{where} got counts {grads.counts.tolist()}, the round drew {counts.tolist()}")
        off = _not_close(grads.sums, sums)
        assert not off, f"{where} got domain gradient sums that are not the head's gradient over domain(s) {off}"
        if halves:
            assert grads.half_sums is not None and grads.half_counts is not None, f"{where} got no half sums"
            assert np.array_equal(grads.half_counts.sum(0), counts) and \
                np.all(np.abs(grads.half_counts[0] - grads.half_counts[1]) <= 1), (
                f"{where} got half counts {grads.half_counts.tolist()} that do not split {counts.tolist()}")
            off = _not_close(grads.half_sums.sum(0), sums)
            assert not off, f"{where} got half sums that do not add up to the domain sums for domain(s) {off}"


@on_one_thread
def _domain_sums(run: SyntheticRun, batches: list[Batch]) -> tuple[np.ndarray, np.ndarray]:
    """Per domain, the gradient of its share of each step's mean loss with respect to the head's
    weight, summed over `batches` by plain autograd (outside driver.batch: untapped), and the
    examples drawn."""
    sums = np.zeros((run.num_domains, VOCAB * HIDDEN))
    for batch in batches:
        row_loss = run.row_losses(batch)
        for d in np.unique(batch.domains):
            share = row_loss[torch.from_numpy(batch.domains == d)].sum() / batch.domains.size
            (grad,) = torch.autograd.grad(share, run.head.weight, retain_graph=True)
            sums[d] += grad.double().numpy().reshape(-1)
    counts = np.bincount(np.concatenate([b.domains for b in batches] or [np.empty(0, np.int64)]),
                         minlength=run.num_domains)
    return sums, counts


def _not_close(got, expected: np.ndarray) -> list[int]:
    """The domains (rows) where `got` is not `expected` up to float32 rounding."""
    got = np.asarray(got, dtype=np.float64)
    if got.shape != expected.shape:
        return list(range(expected.shape[0]))
    close = np.isclose(got, expected, rtol=1e-4, atol=1e-5, equal_nan=True).all(axis=1)
    return np.flatnonzero(~close).tolist()


def _checkpointed(state: dict) -> dict:
    """`state` after a trip through files: the driver's as a checkpoint holds it (tensors and
    plain data, loaded with weights_only), the rest pickled."""
    buffer = io.BytesIO()
    torch.save(state["driver"], buffer)
    buffer.seek(0)
    rest = pickle.loads(pickle.dumps({k: v for k, v in state.items() if k != "driver"}))
    return {**rest, "driver": torch.load(buffer, weights_only=True)}


def _same(a: list[Mixture], b: list[Mixture]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x.weights, y.weights) for x, y in zip(a, b))


def owner(factory) -> type:
    """The strategy class a factory makes."""
    if isinstance(factory, type):
        return factory
    if isinstance(factory, Variant):
        return factory.cls
    if isinstance(factory, functools.partial):
        return owner(factory.func)
    return type(factory())


STRATEGY_KIT = Kit(
    kind="strategy",
    checks=(check_init_stores_params_only, check_declared_signals, check_declared_capabilities,
            check_declared_variants, check_valid_mixtures, check_same_seed_same_trajectory,
            check_state_dict_round_trip, check_inputs_not_mutated, check_one_domain, check_zero_feedback,
            check_nonfinite_feedback, check_probe_steps_within_budget, check_domain_gradients_from_the_tap),
    # A MixingStrategy class, or any other callable (a factory: a partial, a lambda).
    accepts=lambda s: issubclass(s, MixingStrategy) if isinstance(s, type) else callable(s),
    prepare=lambda factory: factory,
    owner=owner,
    does_not_apply=does_not_apply,
    variants=variants_of,
)
