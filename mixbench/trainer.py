"""The one shared trainer: every strategy runs through this loop and meets it only via the contract.

Training is `num_rounds` rounds of K = `steps_per_round` optimiser steps. Each batch is drawn
from the current mixture (each example picks its domain from p, then an example of it). At
every round end the trainer evaluates the per-domain eval loss, hands the strategy the round's
feedback (only the signals it declared), and takes the next mixture back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from mixbench.bench import Bench, StepResult, cosine_schedule
from mixbench.errors import MixbenchError
from mixbench.evaluation import EvalReference, select_eval_subset, weighted_mean
from mixbench.meter import Meter
from mixbench.mixture import Mixture
from mixbench.probe import Probe
from mixbench.sampler import MixtureSampler
from mixbench.strategy import MixingStrategy, RoundFeedback, RunContext, RunShape, Signal, StepFeedback
from mixbench.tap import GradientTap
from mixbench.task import Budget, TaskData
from mixbench.workload import Evaluation, build_workload


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    steps_per_round: int
    batch_size: int
    seq_len: int
    lr: float
    eval_per_domain: int
    n_layer: int
    n_head: int
    n_embd: int
    seed: int = 0
    device: str = "auto"
    model: str = "gpt"
    image_size: int = 32
    weight_decay: float = 0.1
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0

    @classmethod
    def from_budget(cls, budget: Budget, **overrides) -> TrainConfig:
        values = asdict(budget)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def validate(self) -> None:
        for name in ("steps", "steps_per_round", "batch_size", "seq_len", "eval_per_domain", "image_size"):
            if getattr(self, name) <= 0:
                raise MixbenchError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.steps_per_round > self.steps:
            raise MixbenchError(
                f"steps-per-round ({self.steps_per_round}) is larger than steps ({self.steps})"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise MixbenchError(f"lr must be a positive number, got {self.lr}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise MixbenchError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")

    @property
    def num_rounds(self) -> int:
        return -(-self.steps // self.steps_per_round)


@dataclass
class RoundRecord:
    round_index: int
    step: int
    mixture: list[float]               # the mixture sampled from during this round
    counts: list[int]                  # examples drawn per domain
    eval_losses: list[float]           # per domain, at the round end
    mean_eval_loss: float              # Σ q_i L_i
    train_loss: float                  # mean batch loss over the round
    seconds: float
    eval_metrics: dict = field(default_factory=dict)         # e.g. retrieval_top1 (image-text)
    domain_eval_metrics: dict = field(default_factory=dict)  # the same per domain: name -> list
    # Σ q_i L_i over the task's ORIGINAL domains: comparable across domain definitions.
    reference_eval_loss: float = float("nan")
    reference_eval_losses: list[float] = field(default_factory=list)   # per original domain


@dataclass
class RunHistory:
    """Filled in place while training, so a failed or interrupted run still has its record."""

    domains: tuple[str, ...] = ()
    eval_proportions: list[float] = field(default_factory=list)
    initial_eval_losses: list[float] = field(default_factory=list)
    initial_mean_eval_loss: float = float("nan")
    initial_eval_metrics: dict = field(default_factory=dict)
    reference_domains: tuple[str, ...] = ()          # the original domains of the eval split
    reference_proportions: list[float] = field(default_factory=list)
    initial_reference_eval_loss: float = float("nan")
    initial_reference_eval_losses: list[float] = field(default_factory=list)
    rounds: list[RoundRecord] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)     # per step
    final_mixture: list[float] = field(default_factory=list)
    num_params: int = 0
    tokens_trained: int = 0
    device: str = ""
    seconds: float = 0.0
    meter: Meter | None = None
    shape: RunShape | None = None   # sizes for the paper's overhead formulas
    eval_rows: list[int] = field(default_factory=list)   # which eval examples were scored

    @property
    def final_eval_losses(self) -> list[float]:
        return self.rounds[-1].eval_losses if self.rounds else self.initial_eval_losses

    @property
    def final_reference_eval_loss(self) -> float:
        return self.rounds[-1].reference_eval_loss if self.rounds else self.initial_reference_eval_loss

    @property
    def final_reference_eval_losses(self) -> list[float]:
        return self.rounds[-1].reference_eval_losses if self.rounds else self.initial_reference_eval_losses

    @property
    def final_eval_metrics(self) -> dict:
        return self.rounds[-1].eval_metrics if self.rounds else self.initial_eval_metrics

    @property
    def final_mean_eval_loss(self) -> float:
        return self.rounds[-1].mean_eval_loss if self.rounds else self.initial_mean_eval_loss


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MixbenchError("--device cuda was asked for but no CUDA device is available")
    return device


def train(
    data: TaskData,
    strategy: MixingStrategy,
    cfg: TrainConfig,
    *,
    history: RunHistory | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_round: Callable[[RoundRecord], None] | None = None,
    progress: bool = True,
    eval_rows: np.ndarray | None = None,
    reference: EvalReference | None = None,
) -> RunHistory:
    """Train once. `eval_rows` picks the eval examples scored at round ends (indices into
    data.eval); by default `eval_per_domain` of each domain, the same for every seed.
    `reference` labels data.eval by the task's original domains (default: the run's own), for
    the reference eval loss every run of a task is compared on."""
    cfg.validate()
    data.require_eval_in_train()
    history = history if history is not None else RunHistory()
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    meter = Meter(synchronize=torch.cuda.synchronize if device.type == "cuda" else None)
    history.meter = meter
    history.device = str(device)

    # -- model and data: encoded once; a fixed eval subset shared by every seed --------------
    workload = build_workload(data.modality, model=cfg.model, seq_len=cfg.seq_len, n_layer=cfg.n_layer,
                              n_head=cfg.n_head, n_embd=cfg.n_embd, image_size=cfg.image_size)
    model = workload.model.to(device)
    domains, m = data.domains, len(data.domains)
    q = data.eval_proportions()
    train_split = workload.encode(data.train, domains)
    eval_split = workload.encode(data.eval, domains)
    if eval_rows is None:
        eval_rows = select_eval_subset(eval_split.domain_ids.numpy(), cfg.eval_per_domain)
    eval_split = eval_split.subset(torch.as_tensor(np.asarray(eval_rows), dtype=torch.long))
    history.eval_rows = [int(i) for i in eval_rows]
    reference = reference if reference is not None else EvalReference.of([e.domain for e in data.eval])
    if len(reference.labels) != len(data.eval):
        raise MixbenchError("the eval reference labels do not match the task's eval split")
    scored_groups = reference.labels[np.asarray(eval_rows, dtype=np.int64)]
    history.reference_domains, history.reference_proportions = reference.names, reference.proportions.tolist()

    def reference_losses(evaluation: Evaluation) -> tuple[float, list[float]]:
        losses = evaluation.grouped(scored_groups, len(reference.names))
        return weighted_mean(losses, reference.proportions), losses.tolist()
    history.domains, history.eval_proportions = domains, q.tolist()
    history.num_params = workload.num_params()

    # -- strategy start; only the signals it asked for are computed --------------------------
    ctx = RunContext(domains=domains, train_sizes=data.sizes("train"), eval_proportions=q,
                     total_steps=cfg.steps, steps_per_round=cfg.steps_per_round, seed=cfg.seed)
    wants = strategy.signals
    tap = GradientTap(model.head, m, meter) if Signal.DOMAIN_GRADIENTS in wants else None
    # Evaluations a strategy needs are its overhead; otherwise they are reporting only.
    round_eval_category = "strategy" if Signal.EVAL_LOSSES in wants else "eval"
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  betas=(0.9, 0.95))
    bench = Bench(workload=workload, optimizer=optimizer, train_split=train_split, eval_split=eval_split,
                  sampler=MixtureSampler(train_split.domain_ids, m, seed=cfg.seed), meter=meter,
                  device=device, num_domains=m, n_params=history.num_params, batch_size=cfg.batch_size,
                  total_steps=cfg.steps, lr_at=cosine_schedule(cfg.lr, cfg.steps, cfg.warmup_fraction),
                  grad_clip=cfg.grad_clip, seed=cfg.seed, tap=tap)
    probe = Probe(meter, bench)
    model.train()
    with meter.timed("strategy", "start"):
        try:
            mixture = Mixture(strategy.start(ctx), num_domains=m)
            mixture = Mixture(strategy.prepare(probe) or mixture, num_domains=m)
        except ValueError as exc:  # hyperparameters that do not fit this run (e.g. probe size)
            raise MixbenchError(str(exc)) from None

    initial = bench.evaluate("eval")
    history.initial_eval_losses = initial.losses.tolist()
    history.initial_mean_eval_loss = weighted_mean(initial.losses, q)
    history.initial_eval_metrics = dict(initial.metrics)
    history.initial_reference_eval_loss, history.initial_reference_eval_losses = reference_losses(initial)

    # -- every training step, the loop's or a probe's, is recorded the same way --------------
    bar = tqdm(total=cfg.steps, disable=not progress, desc=type(strategy).__name__, unit="step",
               dynamic_ncols=True, leave=False, mininterval=0.5)
    round_steps: list = []

    def record_step(result: StepResult) -> None:
        round_steps.append(result)
        history.train_losses.append(result.loss)
        history.tokens_trained = bench.tokens_trained
        strategy.observe_step(StepFeedback(step=result.step, counts=np.bincount(result.domains, minlength=m),
                                           loss=result.loss))
        if on_step is not None:
            on_step(result.step, result.loss)
        bar.update(1)
        bar.set_postfix(step_loss=f"{result.loss:.3f}")

    bench.step_listeners.append(record_step)

    # -- the loop: rounds of K steps, the mixture updated at each round end ------------------
    started = time.perf_counter()
    try:
        for round_index in range(cfg.num_rounds):
            round_start = time.perf_counter()
            round_end = min((round_index + 1) * cfg.steps_per_round, cfg.steps)
            while bench.step < round_end:  # a probe in the last update may already have used some
                bench.train_step(mixture)
            done, round_steps[:] = list(round_steps), []
            counts = _per_domain([r.domains for r in done], m)

            evaluation = bench.evaluate(round_eval_category if bench.step < cfg.steps else "eval")
            eval_losses = evaluation.losses
            record = RoundRecord(
                round_index=round_index, step=bench.step, mixture=mixture.tolist(), counts=counts.tolist(),
                eval_losses=eval_losses.tolist(), mean_eval_loss=weighted_mean(eval_losses, q),
                train_loss=float(np.mean([r.loss for r in done])) if done else float("nan"),
                seconds=time.perf_counter() - round_start, **_metrics_of(evaluation),
            )
            record.reference_eval_loss, record.reference_eval_losses = reference_losses(evaluation)
            history.rounds.append(record)  # recorded before the update: a failing update loses nothing
            if on_round is not None:
                on_round(record)
            bar.set_postfix(round=f"{round_index + 1}/{cfg.num_rounds}", eval=f"{record.mean_eval_loss:.3f}")
            if bench.step < cfg.steps:  # after the last round there is no next mixture to choose
                feedback = RoundFeedback(
                    round_index=round_index, step=bench.step, mixture=mixture, counts=counts,
                    domain_gradients=tap.snapshot_and_reset() if tap is not None else None,
                    eval_losses=eval_losses if Signal.EVAL_LOSSES in wants else None,
                    train_losses=_train_losses(done, m) if Signal.TRAIN_LOSSES in wants else None,
                )
                with meter.timed("strategy", "update"):
                    mixture = Mixture(strategy.update(feedback, probe), num_domains=m)
            history.final_mixture = mixture.tolist()
    finally:
        bar.close()
        if tap is not None:
            tap.remove()
        history.seconds = time.perf_counter() - started
        history.shape = RunShape(num_params=history.num_params, train_tokens=bench.tokens_trained,
                                 eval_tokens=round(len(eval_split) * workload.tokens_per_example),
                                 batch_tokens=round(cfg.batch_size * workload.tokens_per_example),
                                 rounds=len(history.rounds), num_domains=m)
    return history


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
