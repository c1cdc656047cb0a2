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
import torch.nn.functional as F
from tqdm.auto import tqdm

from mixbench.data import IGNORE, encode_examples
from mixbench.errors import MixbenchError
from mixbench.evaluation import per_domain_loss, select_eval_subset, weighted_mean
from mixbench.meter import Meter
from mixbench.mixture import Mixture
from mixbench.models import build_model
from mixbench.probe import Probe
from mixbench.sampler import MixtureSampler
from mixbench.strategy import MixingStrategy, RoundFeedback, RunContext, Signal, StepFeedback
from mixbench.tap import GradientTap
from mixbench.task import Budget, TaskData


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
    weight_decay: float = 0.1
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0

    @classmethod
    def from_budget(cls, budget: Budget, **overrides) -> TrainConfig:
        values = asdict(budget)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def validate(self) -> None:
        for name in ("steps", "steps_per_round", "batch_size", "seq_len", "eval_per_domain"):
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


@dataclass
class RunHistory:
    """Filled in place while training, so a failed or interrupted run still has its record."""

    domains: tuple[str, ...] = ()
    eval_proportions: list[float] = field(default_factory=list)
    initial_eval_losses: list[float] = field(default_factory=list)
    initial_mean_eval_loss: float = float("nan")
    rounds: list[RoundRecord] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)     # per step
    final_mixture: list[float] = field(default_factory=list)
    num_params: int = 0
    tokens_trained: int = 0
    device: str = ""
    seconds: float = 0.0
    meter: Meter | None = None

    @property
    def final_eval_losses(self) -> list[float]:
        return self.rounds[-1].eval_losses if self.rounds else self.initial_eval_losses

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
) -> RunHistory:
    cfg.validate()
    history = history if history is not None else RunHistory()
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    meter = Meter(synchronize=torch.cuda.synchronize if device.type == "cuda" else None)
    history.meter = meter
    history.device = str(device)

    # -- data: tokenise once; a fixed eval subset shared by every seed -----------------------
    model, tokenizer = build_model(cfg.model, seq_len=cfg.seq_len, n_layer=cfg.n_layer,
                                   n_head=cfg.n_head, n_embd=cfg.n_embd)
    model.to(device)
    domains, m = data.domains, len(data.domains)
    q = data.eval_proportions()
    train_split = encode_examples(data.train, domains, tokenizer, cfg.seq_len)
    eval_split = encode_examples(data.eval, domains, tokenizer, cfg.seq_len)
    eval_split = eval_split.subset(
        torch.from_numpy(select_eval_subset(eval_split.domain_ids.numpy(), cfg.eval_per_domain)))
    history.domains, history.eval_proportions = domains, q.tolist()
    history.num_params = n_params = model.num_params()

    # -- strategy start; only the signals it asked for are computed --------------------------
    ctx = RunContext(domains=domains, train_sizes=data.sizes("train"), eval_proportions=q,
                     total_steps=cfg.steps, steps_per_round=cfg.steps_per_round, seed=cfg.seed)
    with meter.timed("strategy", "start"):
        mixture = Mixture(strategy.start(ctx), num_domains=m)
    wants = strategy.signals
    tap = GradientTap(model.head, m, meter) if Signal.DOMAIN_GRADIENTS in wants else None
    # Evaluations a strategy needs are its overhead; otherwise they are reporting only.
    round_eval_category = "strategy" if Signal.EVAL_LOSSES in wants else "eval"
    sampler = MixtureSampler(train_split.domain_ids, m, seed=cfg.seed)
    probe = Probe(meter)

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  betas=(0.9, 0.95))
    warmup = max(1, int(cfg.warmup_fraction * cfg.steps))

    def lr_at(step: int) -> float:  # linear warmup, cosine decay to 10 %
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        progress_ = (step - warmup) / max(1, cfg.steps - warmup)
        return cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * progress_)))

    eval_tokens = int(eval_split.inputs.numel())

    def evaluate(category: str) -> np.ndarray:
        with meter.timed(category, "eval"):
            losses = per_domain_loss(model, eval_split, m, cfg.batch_size, device)
        meter.add_flops(category, "eval", 2 * n_params * eval_tokens)
        return losses

    initial = evaluate("eval")
    history.initial_eval_losses = initial.tolist()
    history.initial_mean_eval_loss = weighted_mean(initial, q)

    # -- the loop ----------------------------------------------------------------------------
    started = time.perf_counter()
    bar = tqdm(total=cfg.steps, disable=not progress, desc=type(strategy).__name__, unit="step",
               dynamic_ncols=True, leave=False, mininterval=0.5)
    try:
        step = 0
        model.train()
        for round_index in range(cfg.num_rounds):
            round_start = time.perf_counter()
            counts = np.zeros(m, dtype=np.int64)
            train_loss_sum = np.zeros(m) if Signal.TRAIN_LOSSES in wants else None
            train_tokens = np.zeros(m) if Signal.TRAIN_LOSSES in wants else None
            batch_losses = []
            for _ in range(min(cfg.steps_per_round, cfg.steps - step)):
                rows, batch_domains = sampler.sample(mixture, cfg.batch_size)
                x = train_split.inputs[rows].to(device)    # (B, T)
                y = train_split.targets[rows].to(device)   # (B, T)
                with meter.timed("train", "step"):
                    if tap is not None:
                        tap.set_batch(torch.from_numpy(batch_domains).to(device))
                    logits = model(x)  # (B, T, V)
                    token_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                                 ignore_index=IGNORE, reduction="none").view(y.shape)
                    n_target = (y != IGNORE).sum().clamp(min=1)
                    loss = token_loss.sum() / n_target  # mean over the batch's response tokens
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    for group in optimizer.param_groups:
                        group["lr"] = lr_at(step)
                    optimizer.step()
                meter.add_flops("train", "step", 6 * n_params * x.numel())
                history.tokens_trained += int(x.numel())

                batch_counts = np.bincount(batch_domains, minlength=m)
                counts += batch_counts
                loss_value = float(loss.detach())
                batch_losses.append(loss_value)
                history.train_losses.append(loss_value)
                if train_loss_sum is not None:
                    per_row = token_loss.detach().sum(1).double().cpu().numpy()
                    per_row_tokens = (y != IGNORE).sum(1).double().cpu().numpy()
                    np.add.at(train_loss_sum, batch_domains, per_row)
                    np.add.at(train_tokens, batch_domains, per_row_tokens)
                step += 1
                strategy.observe_step(StepFeedback(step=step, counts=batch_counts, loss=loss_value))
                if on_step is not None:
                    on_step(step, loss_value)
                bar.update(1)
                bar.set_postfix(round=f"{round_index + 1}/{cfg.num_rounds}", loss=f"{loss_value:.3f}")

            eval_losses = evaluate(round_eval_category if step < cfg.steps else "eval")
            record = RoundRecord(
                round_index=round_index, step=step, mixture=mixture.tolist(), counts=counts.tolist(),
                eval_losses=eval_losses.tolist(), mean_eval_loss=weighted_mean(eval_losses, q),
                train_loss=float(np.mean(batch_losses)), seconds=time.perf_counter() - round_start,
            )
            history.rounds.append(record)  # recorded before the update: a failing update loses nothing
            if on_round is not None:
                on_round(record)
            if step < cfg.steps:  # after the last round there is no next mixture to choose
                feedback = RoundFeedback(
                    round_index=round_index, step=step, mixture=mixture, counts=counts,
                    domain_gradients=tap.snapshot_and_reset() if tap is not None else None,
                    eval_losses=eval_losses if Signal.EVAL_LOSSES in wants else None,
                    train_losses=_safe_ratio(train_loss_sum, train_tokens) if train_loss_sum is not None else None,
                )
                with meter.timed("strategy", "update"):
                    mixture = Mixture(strategy.update(feedback, probe), num_domains=m)
            history.final_mixture = mixture.tolist()
            bar.set_postfix(round=f"{round_index + 1}/{cfg.num_rounds}", eval=f"{record.mean_eval_loss:.3f}")
    finally:
        bar.close()
        if tap is not None:
            tap.remove()
        history.seconds = time.perf_counter() - started
    return history


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
