"""The one shared trainer: every strategy runs through this loop and meets it only via the contract.

Training is `num_rounds` rounds of K = `steps_per_round` optimiser steps. Each batch is drawn
from the current mixture by the one sampler (each domain read in shuffled passes). The round —
its counts, train losses, the gradient tap, the feedback built from the strategy's declared
signals, the metered update — is the round driver's (rounds.py), the very object the Hugging Face
callback and the plain-torch DomainMixer drive: the benchmark trains the R&B a user runs. At every
round end the trainer evaluates the per-domain eval loss, records the round, and has the driver
hand the strategy its feedback for the next mixture.

The same loop trains data-parallel when `ranks` are several processes (distributed.py says how
they share the work); a single process is a group of one, so the loop reads the same.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from mixbench.config import TrainConfig
from mixbench.engine.callbacks import ProgressBar, TrainCallback
from mixbench.engine.checkpoint import Checkpointer, CheckpointPlan
from mixbench.engine.distributed import SINGLE, SingleProcess
from mixbench.engine.evaluation import EvalReference, select_eval_subset, weighted_mean
from mixbench.engine.history import RoundRecord, RunHistory
from mixbench.engine.meter import Meter
from mixbench.engine.probe import RunProbe
from mixbench.engine.rounds import RoundDriver
from mixbench.engine.sampler import MixtureSampler
from mixbench.engine.session import RunSetup, TrainingSession
from mixbench.engine.state import RunState
from mixbench.errors import MixbenchError
from mixbench.strategy import MixingStrategy, RunContext, RunShape
from mixbench.task import TaskData
from mixbench.workloads import Evaluation, build_workload

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
    domains, m, q = data.domains, len(data.domains), data.eval_proportions()
    train_split = workload.encode(data.train, domains)
    eval_split = workload.encode(data.eval, domains)
    if eval_rows is None:
        eval_rows = select_eval_subset(eval_split.domain_ids.numpy(), cfg.eval_per_domain)
    eval_split = eval_split.subset(torch.as_tensor(np.asarray(eval_rows), dtype=torch.long))
    scoring = ReferenceScoring.of(reference, data, eval_rows)
    _describe(history, data, q, scoring, eval_rows, workload.num_params(), device, ranks)

    # -- the run's state: the model, the one sampler, the round driver --------------------------
    meter = Meter(synchronize=torch.cuda.synchronize if device.type == "cuda" else None)
    history.meter = meter
    driver = RoundDriver(strategy, num_domains=m, head=model.head, meter=meter, tap_memory_mib=cfg.tap_memory,
                         tap_sums=cfg.tap_sums, seed=cfg.seed, ranks=ranks, device=device)
    history.tap_accumulator = driver.describe_tap()
    state = RunState(model=model, driver=driver, meter=meter, history=history,
                     optimizer=torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                                 betas=(0.9, 0.95)),
                     # Every rank draws the whole global batch (one unit) and trains on its slice.
                     sampler=MixtureSampler(train_split.domain_ids, m, batch_size=cfg.batch_size // ranks.world_size,
                                            world_size=ranks.world_size, rank=None, seed=cfg.seed),
                     probe_rng=np.random.default_rng([cfg.seed, 1]))
    checkpointer = Checkpointer(checkpoints, state, ranks)
    resumed = checkpointer.restore()   # a resumed run goes on from its checkpoint's state, bit for bit
    callbacks = [ProgressBar(cfg.steps, cfg.num_rounds, desc=type(strategy).__name__,
                             enabled=progress and ranks.writer, done=state.step), *callbacks]
    session = TrainingSession(RunSetup(cfg=cfg, workload=workload, train_split=train_split, eval_split=eval_split,
                                       device=device, num_domains=m, ranks=ranks), state, callbacks)
    probe = RunProbe(meter, session)

    try:
        model.train()
        if not resumed:   # a resumed run's p_0, initial evaluation and prepared strategy are in the checkpoint
            ctx = RunContext(domains=domains, train_sizes=data.sizes("train"), eval_proportions=q,
                             total_steps=cfg.steps, steps_per_round=cfg.steps_per_round, seed=cfg.seed)
            driver.start(ctx)
            # The untrained model's losses, before prepare() may train it (Aioli's first LearnParams).
            _record_initial(history, session.evaluate("eval", "initial_eval"), q, scoring)
            driver.prepare(probe)

        # -- the loop: rounds of K steps, the mixture updated at each round end ------------------
        state.clock_start = time.perf_counter() - history.seconds   # resumed: the clock goes on from the checkpoint's
        for round_index in range(len(history.rounds), cfg.num_rounds):   # resumed: from the checkpoint's round on
            round_start = time.perf_counter()
            round_end = min((round_index + 1) * cfg.steps_per_round, cfg.steps)
            while state.step < round_end:  # a probe in the last update may already have taken some
                with checkpointer.around_step(round_end):         # Ctrl-C waits for the step, then checkpoints
                    session.record(session.train_step(driver.mixture))   # sample → forward/backward → step
            _end_round(session, probe, scoring, round_index, round_start)
            checkpointer.save()   # the round is over: a resume starts the next one
    finally:
        for callback in callbacks:
            callback.close()
        driver.close()
        if state.clock_start is not None:
            history.seconds = time.perf_counter() - state.clock_start
        history.shape = RunShape(num_params=history.num_params, train_tokens=history.tokens_trained,
                                 eval_tokens=round(len(eval_split) * workload.tokens_per_example),
                                 batch_tokens=round(cfg.batch_size * workload.tokens_per_example),
                                 rounds=len(history.rounds), num_domains=m)
    return history


def _end_round(session: TrainingSession, probe: RunProbe, scoring: ReferenceScoring, round_index: int,
               round_start: float) -> None:
    """Close the round: evaluate (the last round, every --eval-every, and every round for a
    strategy that reads eval losses), record it, then have the strategy choose the next mixture."""
    state, cfg, driver, history = session.state, session.setup.cfg, session.state.driver, session.state.history
    last = state.step >= cfg.steps
    totals = driver.close_round(update=not last)
    evaluated = last or driver.needs_eval_losses or (round_index + 1) % cfg.eval_every == 0
    # Evaluations a strategy needs are its overhead; otherwise they are reporting only.
    category = "strategy" if driver.needs_eval_losses and not last else "eval"
    evaluation = session.evaluate(category) if evaluated else None
    eval_losses = evaluation.losses if evaluated else np.full(driver.num_domains, np.nan)
    first_step = history.rounds[-1].step if history.rounds else 0   # one train loss per step of the run's model
    record = RoundRecord(
        round_index=round_index, step=state.step, mixture=driver.mixture.tolist(), counts=totals.counts.tolist(),
        eval_losses=eval_losses.tolist(), mean_eval_loss=weighted_mean(eval_losses, scoring.q) if evaluated else NAN,
        train_loss=float(np.mean(history.train_losses[first_step:])) if state.step > first_step else NAN,
        seconds=time.perf_counter() - round_start, evaluated=evaluated,
        **(_metrics_of(evaluation) if evaluated else {}),
    )
    if evaluated:
        record.reference_eval_loss, record.reference_eval_losses = scoring.losses(evaluation)
    history.rounds.append(record)  # recorded before the update: a failing update loses nothing
    for callback in session.callbacks:
        callback.on_round(record)
    if not last:  # after the last round there is no next mixture to choose
        driver.update(totals, round_index=round_index, step=state.step, probe=probe,
                      eval_losses=eval_losses if driver.needs_eval_losses else None)
    history.final_mixture = driver.mixture.tolist()


class ReferenceScoring:
    """The scored eval rows grouped by the task's original domains: the reference eval loss every
    run of a task is compared on, whatever domains it trained on."""

    def __init__(self, reference: EvalReference, groups: np.ndarray, q: np.ndarray):
        self.reference, self.groups, self.q = reference, groups, q

    @classmethod
    def of(cls, reference: EvalReference | None, data: TaskData, eval_rows) -> ReferenceScoring:
        reference = reference if reference is not None else EvalReference.of([e.domain for e in data.eval])
        if len(reference.labels) != len(data.eval):
            raise MixbenchError("the eval reference labels do not match the task's eval split")
        return cls(reference, reference.labels[np.asarray(eval_rows, dtype=np.int64)], data.eval_proportions())

    def losses(self, evaluation: Evaluation) -> tuple[float, list[float]]:
        losses = evaluation.grouped(self.groups, len(self.reference.names))
        return weighted_mean(losses, self.reference.proportions), losses.tolist()


def _describe(history: RunHistory, data: TaskData, q: np.ndarray, scoring: ReferenceScoring, eval_rows,
              num_params: int, device: torch.device, ranks: SingleProcess) -> None:
    """What the run trains on, set up before training (a resume checks it against its checkpoint's)."""
    history.domains, history.eval_proportions = data.domains, q.tolist()
    history.reference_domains = scoring.reference.names
    history.reference_proportions = scoring.reference.proportions.tolist()
    history.eval_rows = [int(i) for i in eval_rows]
    history.num_params = num_params
    history.device = str(device)
    history.world_size = ranks.world_size


def _record_initial(history: RunHistory, initial: Evaluation, q: np.ndarray, scoring: ReferenceScoring) -> None:
    history.initial_eval_losses = initial.losses.tolist()
    history.initial_mean_eval_loss = weighted_mean(initial.losses, q)
    history.initial_eval_metrics = dict(initial.metrics)
    history.initial_reference_eval_loss, history.initial_reference_eval_losses = scoring.losses(initial)


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


def _metrics_of(evaluation: Evaluation) -> dict:
    return {"eval_metrics": dict(evaluation.metrics),
            "domain_eval_metrics": {k: v.tolist() for k, v in evaluation.domain_metrics.items()}}
