"""The one shared trainer: every strategy runs through this loop and meets it only via the contract.

Training is `num_rounds` rounds of K = `steps_per_round` optimiser steps. Each batch is drawn
from the current mixture (each example picks its domain from p, then an example of it). At
every round end the trainer evaluates the per-domain eval loss, hands the strategy the round's
feedback (only the signals it declared), and takes the next mixture back.

The same loop trains data-parallel when `ranks` are several processes (distributed.py says how
they share the work); a single process is a group of one, so the loop reads the same.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch

from mixbench.config import TrainConfig
from mixbench.engine.accumulator import MIB, HalvesAccumulator, exact_bytes, make_accumulator
from mixbench.engine.callbacks import ProgressBar, TrainCallback
from mixbench.engine.checkpoint import Checkpointer, CheckpointPlan
from mixbench.engine.distributed import SINGLE, SingleProcess
from mixbench.engine.evaluation import EvalReference, select_eval_subset, weighted_mean
from mixbench.engine.history import RoundRecord, RunHistory
from mixbench.engine.meter import Meter
from mixbench.engine.probe import RunProbe
from mixbench.engine.sampler import MixtureSampler
from mixbench.engine.session import RunSetup, TrainingSession
from mixbench.engine.state import RunState, StepResult
from mixbench.engine.tap import GradientTap
from mixbench.errors import MixbenchError
from mixbench.mixture import Mixture
from mixbench.strategy import DomainGradients, MixingStrategy, RoundFeedback, RunContext, RunShape, Signal
from mixbench.task import TaskData
from mixbench.workloads import Evaluation, build_workload

log = logging.getLogger(__name__)
NAN = float("nan")


def train(
    data: TaskData,
    strategy: MixingStrategy,
    cfg: TrainConfig,
    *,
    history: RunHistory | None = None,
    callbacks: Sequence[TrainCallback] = (),
    progress: bool = True,
    eval_rows: np.ndarray | None = None,
    reference: EvalReference | None = None,
    checkpoints: CheckpointPlan | None = None,
    ranks: SingleProcess = SINGLE,
) -> RunHistory:
    """Train once. `eval_rows` picks the eval examples scored at round ends (indices into
    data.eval); by default `eval_per_domain` of each domain, the same for every seed.
    `reference` labels data.eval by the task's original domains (default: the run's own), for
    the reference eval loss every run of a task is compared on. `history` is filled in place.
    `checkpoints` says where the run's checkpoints go, and which one it resumes from. `ranks`
    are the processes training the model together (distributed.join() under torchrun)."""
    data.require_eval_in_train()
    ranks.check(data.modality, cfg.batch_size)
    history = history if history is not None else RunHistory()
    device = ranks.place(resolve_device(cfg.device))
    torch.manual_seed(cfg.seed)   # the same on every rank: one model, one generator of batches

    # -- model and data: encoded once; a fixed eval subset shared by every seed ----------------
    workload = build_workload(data.modality, cfg)
    model = workload.model.to(device)
    domains, m = data.domains, len(data.domains)
    q = data.eval_proportions()
    train_split = workload.encode(data.train, domains)
    eval_split = workload.encode(data.eval, domains)
    if eval_rows is None:
        eval_rows = select_eval_subset(eval_split.domain_ids.numpy(), cfg.eval_per_domain)
    eval_split = eval_split.subset(torch.as_tensor(np.asarray(eval_rows), dtype=torch.long))
    reference = reference if reference is not None else EvalReference.of([e.domain for e in data.eval])
    if len(reference.labels) != len(data.eval):
        raise MixbenchError("the eval reference labels do not match the task's eval split")
    scored_groups = reference.labels[np.asarray(eval_rows, dtype=np.int64)]

    def reference_losses(evaluation: Evaluation) -> tuple[float, list[float]]:
        losses = evaluation.grouped(scored_groups, len(reference.names))
        return weighted_mean(losses, reference.proportions), losses.tolist()

    history.domains, history.eval_proportions = domains, q.tolist()
    history.reference_domains, history.reference_proportions = reference.names, reference.proportions.tolist()
    history.eval_rows = [int(i) for i in eval_rows]
    history.num_params = workload.num_params()
    history.device = str(device)
    history.world_size = ranks.world_size

    # -- the run's state, and the operations the loop and the strategy's probe share ------------
    meter = Meter(synchronize=torch.cuda.synchronize if device.type == "cuda" else None)
    history.meter = meter
    state = RunState(model=model, strategy=strategy, meter=meter, history=history,
                     optimizer=torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                                 betas=(0.9, 0.95)),
                     sampler=MixtureSampler(train_split.domain_ids, m, seed=cfg.seed),
                     probe_rng=np.random.default_rng([cfg.seed, 1]))
    wants = strategy.signals   # only the signals the strategy asked for are computed
    tap = _tap(model.head, m, meter, cfg, halves=Signal.DOMAIN_GRADIENT_HALVES in wants) \
        if wants & {Signal.DOMAIN_GRADIENTS, Signal.DOMAIN_GRADIENT_HALVES} else None
    history.tap_accumulator = _describe(tap)
    checkpointer = Checkpointer(checkpoints, state, tap, ranks)
    resumed = checkpointer.restore()   # a resumed run goes on from its checkpoint's state, bit for bit
    bar = ProgressBar(cfg.steps, cfg.num_rounds, desc=type(strategy).__name__, enabled=progress and ranks.writer,
                      done=state.step)
    callbacks = [bar, *callbacks]
    session = TrainingSession(RunSetup(cfg=cfg, workload=workload, train_split=train_split, eval_split=eval_split,
                                       device=device, num_domains=m, tap=tap, ranks=ranks), state, callbacks)
    probe = RunProbe(meter, session)
    # Evaluations a strategy needs are its overhead; otherwise they are reporting only.
    round_eval_category = "strategy" if Signal.EVAL_LOSSES in wants else "eval"

    try:
        model.train()
        if not resumed:   # a resumed run's p_0, initial evaluation and prepared strategy are in the checkpoint
            # -- the strategy starts: p_0 ---------------------------------------------------------------
            ctx = RunContext(domains=domains, train_sizes=data.sizes("train"), eval_proportions=q,
                             total_steps=cfg.steps, steps_per_round=cfg.steps_per_round, seed=cfg.seed)
            with meter.timed("strategy", "start"):
                try:
                    state.mixture = Mixture(strategy.start(ctx), num_domains=m)
                except ValueError as exc:  # hyperparameters that do not fit this run (e.g. probe size)
                    raise MixbenchError(str(exc)) from None

            # The untrained model's losses, before prepare() may train it (Aioli's first LearnParams).
            initial = session.evaluate("eval", "initial_eval")
            history.initial_eval_losses = initial.losses.tolist()
            history.initial_mean_eval_loss = weighted_mean(initial.losses, q)
            history.initial_eval_metrics = dict(initial.metrics)
            history.initial_reference_eval_loss, history.initial_reference_eval_losses = reference_losses(initial)

            with meter.timed("strategy", "prepare"):
                try:
                    state.mixture = Mixture(strategy.prepare(probe) or state.mixture, num_domains=m)
                except ValueError as exc:
                    raise MixbenchError(str(exc)) from None

        # -- the loop: rounds of K steps, the mixture updated at each round end ------------------
        state.clock_start = time.perf_counter() - history.seconds   # resumed: the clock goes on from the checkpoint's
        for round_index in range(len(history.rounds), cfg.num_rounds):   # resumed: from the checkpoint's round on
            round_start = time.perf_counter()
            round_end = min((round_index + 1) * cfg.steps_per_round, cfg.steps)
            while state.step < round_end:  # a probe in the last update may already have taken some
                with checkpointer.around_step(round_end):        # Ctrl-C waits for the step, then checkpoints
                    result = session.train_step(state.mixture)   # sample → tap → forward/backward → step
                    session.record(result)                       # history, strategy.observe_step, callbacks
            done = state.take_round_steps()
            counts = _per_domain([r.domains for r in done], m)

            # --eval-every R skips the reporting evaluations in between; never the last round's,
            # nor those a strategy reads.
            last = state.step >= cfg.steps
            evaluated = last or Signal.EVAL_LOSSES in wants or (round_index + 1) % cfg.eval_every == 0
            evaluation = session.evaluate(round_eval_category if not last else "eval") if evaluated else None
            eval_losses = evaluation.losses if evaluated else np.full(m, np.nan)
            record = RoundRecord(
                round_index=round_index, step=state.step, mixture=state.mixture.tolist(), counts=counts.tolist(),
                eval_losses=eval_losses.tolist(), mean_eval_loss=weighted_mean(eval_losses, q) if evaluated else NAN,
                train_loss=float(np.mean([r.loss for r in done])) if done else NAN,
                seconds=time.perf_counter() - round_start, evaluated=evaluated,
                **(_metrics_of(evaluation) if evaluated else {}),
            )
            if evaluated:
                record.reference_eval_loss, record.reference_eval_losses = reference_losses(evaluation)
            history.rounds.append(record)  # recorded before the update: a failing update loses nothing
            for callback in callbacks:
                callback.on_round(record)

            if state.step < cfg.steps:  # after the last round there is no next mixture to choose
                feedback = RoundFeedback(
                    round_index=round_index, step=state.step, mixture=state.mixture, counts=counts,
                    domain_gradients=_round_gradients(tap, ranks, meter),
                    eval_losses=eval_losses if Signal.EVAL_LOSSES in wants else None,
                    train_losses=_train_losses(done, m) if Signal.TRAIN_LOSSES in wants else None,
                )
                with meter.timed("strategy", "update"):
                    state.mixture = Mixture(strategy.update(feedback, probe), num_domains=m)
            history.final_mixture = state.mixture.tolist()
            checkpointer.save()   # the round is over: a resume starts the next one
    finally:
        for callback in callbacks:
            callback.close()
        if tap is not None:
            tap.remove()
        if state.clock_start is not None:
            history.seconds = time.perf_counter() - state.clock_start
        history.shape = RunShape(num_params=history.num_params, train_tokens=history.tokens_trained,
                                 eval_tokens=round(len(eval_split) * workload.tokens_per_example),
                                 batch_tokens=round(cfg.batch_size * workload.tokens_per_example),
                                 rounds=len(history.rounds), num_domains=m)
    return history


def _tap(head: torch.nn.Module, m: int, meter: Meter, cfg: TrainConfig, halves: bool = False) -> GradientTap:
    """The gradient tap on the model's head, with exact per-domain sums if they fit
    `cfg.tap_memory`, else sketched ones; with `halves`, over two halves of each domain."""
    if not isinstance(head, torch.nn.Linear):
        raise MixbenchError(f"the gradient tap needs an nn.Linear final layer, got {type(head).__name__}")
    accumulator = make_accumulator(m, tuple(head.weight.shape), head.weight.device, cfg.tap_memory, seed=cfg.seed,
                                   halves=halves, mode=cfg.tap_sums)
    if accumulator.sketched and cfg.tap_sums == "auto":
        slots = 2 * m if halves else m
        log.warning("the exact per-domain gradient sums would take %.1f MiB (over --tap-memory %g): sketching "
                    "them in %.1f MiB", exact_bytes(slots, tuple(head.weight.shape)) / MIB, cfg.tap_memory,
                    accumulator.nbytes / MIB)
    return GradientTap(head, m, meter, accumulator=accumulator)


def _round_gradients(tap: GradientTap | None, ranks: SingleProcess, meter: Meter) -> DomainGradients | None:
    """The round's per-domain gradient sums and counts, summed over the ranks first (R&B's only
    communication, metered as tap/allreduce); the tap starts the next round from zero."""
    if tap is None:
        return None
    ranks.sum_(tap.accumulator.tensors(), meter, "tap", "allreduce")
    return tap.snapshot_and_reset()


def _describe(tap: GradientTap | None) -> str:
    if tap is None:
        return ""
    acc = tap.accumulator
    halves = isinstance(acc, HalvesAccumulator)
    inner, unit = (acc.inner, "per domain half") if halves else (acc, "per domain")
    kind = f"sketched, {inner.rows} × {inner.shape[1]} {unit}" if inner.sketched else f"exact, {unit}"
    return f"{kind}, {acc.nbytes / MIB:.1f} MiB"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise MixbenchError(f"device must be auto, cpu or cuda[:N], got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MixbenchError("--device cuda was asked for but no CUDA device is available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise MixbenchError(f"--device {name}: there is no such CUDA device "
                            f"({torch.cuda.device_count()} visible: cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return device


def _per_domain(batch_domains: list[np.ndarray], m: int) -> np.ndarray:
    return np.bincount(np.concatenate(batch_domains), minlength=m) if batch_domains else np.zeros(m, np.int64)


def _train_losses(steps: list[StepResult], m: int) -> np.ndarray:
    """(m,) token-weighted mean train loss per domain over the round; NaN where none was drawn."""
    loss, tokens = np.zeros(m), np.zeros(m)
    for r in steps:
        np.add.at(loss, r.domains, r.row_loss)
        np.add.at(tokens, r.domains, r.row_weight)
    return _safe_ratio(loss, tokens)


def _metrics_of(evaluation: Evaluation) -> dict:
    return {"eval_metrics": dict(evaluation.metrics),
            "domain_eval_metrics": {k: v.tolist() for k, v in evaluation.domain_metrics.items()}}


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
