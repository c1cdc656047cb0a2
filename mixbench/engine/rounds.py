"""The round: everything between two mixture updates, owned by one object, the RoundDriver.

mixbench's trainer, the Hugging Face callback, the plain-torch DomainMixer and the conformance
kit all drive a RoundDriver, so a strategy gets the same feedback whichever loop runs it:

    driver = RoundDriver(strategy, num_domains=m, head=model.head)
    driver.start(ctx); driver.prepare(probe)      # p_0, in driver.mixture
    every step:
        with driver.batch(domain_ids):            # (B,) this process's examples: counted, and the
            out = forward(batch)                  # head's forward split by domain (the gradient tap)
        backward(...)
        driver.record_losses(domain_ids, row_loss, row_weight)   # per-domain train losses
        driver.end_step(step, loss)               # the strategy's per-step hook, if it has one
    every K steps:
        totals = driver.close_round()             # the round's sums, added over the processes
        driver.update(totals, round_index=r, step=s, eval_losses=..., probe=probe)   # the next mixture

What a strategy's feedback holds is decided here, from the signals the strategy declares and
nothing else: the tap exists only when it reads domain gradients (over two halves of each
domain when it asks for DOMAIN_GRADIENT_HALVES), eval losses are asked of the caller only when
it reads them. Every call into the strategy is metered under "strategy".

Data parallel: each process counts and taps its own examples; `close_round` adds the sums over
the processes (R&B's only communication). A loop whose processes each back-propagate the mean
over their own rows (DDP's default averaging, as in the integrations) gets `average_gradients`:
the summed per-domain gradients are then divided by the number of processes, as DDP divides the
gradients. mixbench's trainer back-propagates each process's share of the global mean and sums.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from mixbench.engine.accumulator import MIB, HalvesAccumulator, exact_bytes, make_accumulator
from mixbench.engine.codec import decode, encode
from mixbench.engine.distributed import SINGLE, SingleProcess
from mixbench.engine.meter import Meter
from mixbench.engine.tap import GradientTap
from mixbench.errors import MixbenchError
from mixbench.mixture import Mixture
from mixbench.probe import Probe
from mixbench.strategy import (
    DomainGradients,
    MixingStrategy,
    RoundFeedback,
    RunContext,
    Signal,
    StepFeedback,
    observes_steps,
)

log = logging.getLogger(__name__)

STATE_FORMAT = 2   # 2: the round in progress as every process's share
GRADIENT_SIGNALS = frozenset({Signal.DOMAIN_GRADIENTS, Signal.DOMAIN_GRADIENT_HALVES})


@dataclass(frozen=True)
class RoundTotals:
    """What one round added up to, over every process."""

    counts: np.ndarray                      # (m,) examples drawn per domain
    train_losses: np.ndarray                # (m,) mean train loss per domain; NaN where none was recorded
    gradients: DomainGradients | None       # the tap's per-domain sums (None: the strategy reads none)


class RoundDriver:
    """Drives `strategy` through the rounds of one run.

    num_domains       m
    head              the model's final linear layer, tapped when the strategy reads domain
                      gradients (required then; ignored otherwise)
    meter             where the tap's and the strategy's work is booked (a new Meter by default)
    tap_memory_mib    memory the exact per-domain sums may take before they are sketched
    tap_sums          "auto", "exact" or "sketched" (see mixbench.engine.accumulator)
    seed              the sketch's hash functions
    ranks             the processes training the model together (SINGLE: one)
    average_gradients each process back-propagates the mean over its own rows (see the module
                      docstring)
    device            where the round's counts and sums live (default: the head's, else the CPU)
    """

    def __init__(self, strategy: MixingStrategy, *, num_domains: int, head: nn.Module | None = None,
                 meter: Meter | None = None, tap_memory_mib: float = 1024.0, tap_sums: str = "auto", seed: int = 0,
                 ranks: SingleProcess = SINGLE, average_gradients: bool = False,
                 device: torch.device | str | None = None):
        self.strategy = strategy
        self.signals = frozenset(strategy.signals)
        self.num_domains = m = num_domains
        self.meter = meter if meter is not None else Meter()
        self.ranks, self.average_gradients = ranks, average_gradients
        self.tap = _tap(head, m, self.meter, tap_memory_mib, tap_sums, seed, Signal.DOMAIN_GRADIENT_HALVES in
                        self.signals) if self.signals & GRADIENT_SIGNALS else None
        if device is None:
            device = self.tap.head.weight.device if self.tap is not None else torch.device("cpu")
        self.device = torch.device(device)
        self.observes_steps = observes_steps(strategy)
        # The round in progress, this process's share: examples per domain, and the summed train
        # loss and its weight (text: scored tokens) per domain.
        self.counts = torch.zeros(m, dtype=torch.long, device=self.device)
        self.loss_sums = torch.zeros(m, dtype=torch.float64, device=self.device)
        self.loss_weights = torch.zeros(m, dtype=torch.float64, device=self.device)
        self.steps_in_round = 0
        # The step in progress, for a strategy that observes every step.
        self._step_counts = torch.zeros(m, dtype=torch.long, device=self.device)
        self._step_loss = torch.zeros(2, dtype=torch.float64, device=self.device)
        self.mixture: Mixture | None = None   # what the round in progress samples from

    @property
    def needs_eval_losses(self) -> bool:
        return Signal.EVAL_LOSSES in self.signals

    # -- before training --------------------------------------------------------------------------
    def start(self, ctx: RunContext) -> Mixture:
        """p_0 from the strategy's start hook."""
        with self.meter.timed("strategy", "start"):
            self.mixture = _fitting(lambda: self.strategy.start(ctx), self.num_domains)
        return self.mixture

    def prepare(self, probe: Probe) -> Mixture:
        """The strategy's work before training (a skills graph, a proxy run), which may set a new p_0."""
        with self.meter.timed("strategy", "prepare"):
            self.mixture = _fitting(lambda: self.strategy.prepare(probe) or self.mixture, self.num_domains)
        return self.mixture

    # -- every step -------------------------------------------------------------------------------
    @contextmanager
    def batch(self, domain_ids: torch.Tensor) -> Iterator[None]:
        """Around the forward of one (micro-)batch of this process: `domain_ids` (B,) is the domain
        of each example. Its examples count for the round; a forward under no_grad inside (an
        evaluation) counts for nothing."""
        ids = torch.as_tensor(domain_ids, dtype=torch.long).to(self.device)
        if torch.is_grad_enabled():
            drawn = torch.bincount(ids, minlength=self.num_domains)
            self.counts += drawn
            self._step_counts += drawn
        if self.tap is None:
            yield
            return
        with self.tap.batch(ids):
            yield

    def record_losses(self, domain_ids, row_loss, row_weight=None) -> None:
        """This process's per-example summed losses (B,) and what each counts for (text: its scored
        tokens; default 1), for the round's per-domain train losses."""
        ids = torch.as_tensor(domain_ids, dtype=torch.long).to(self.device)
        losses = torch.as_tensor(row_loss).detach().to(self.device, torch.float64).reshape(-1)
        weights = torch.ones_like(losses) if row_weight is None else \
            torch.as_tensor(row_weight).detach().to(self.device, torch.float64).reshape(-1)
        self.loss_sums.index_add_(0, ids, losses)
        self.loss_weights.index_add_(0, ids, weights)
        if self.observes_steps:
            self._step_loss += torch.stack([losses.sum(), weights.sum()])

    def end_step(self, step: int, loss: float | None = None) -> None:
        """After each optimiser step (`step` counted from 1). A strategy with a per-step hook sees
        the step's draws over every process and its loss: `loss` if given, else the mean of the
        losses recorded in the step (NaN if none were)."""
        self.steps_in_round += 1
        if not self.observes_steps:
            return
        self.ranks.sum_([self._step_counts, self._step_loss], self.meter, "strategy", "observe_step")
        if loss is None:
            total, weight = self._step_loss.tolist()
            loss = total / weight if weight > 0 else float("nan")
        counts = self._step_counts.cpu().numpy().astype(np.int64)
        self._step_counts.zero_()
        self._step_loss.zero_()
        with self.meter.timed("strategy", "observe_step"):
            self.strategy.observe_step(StepFeedback(step=step, counts=counts, loss=float(loss)))

    # -- every round end --------------------------------------------------------------------------
    def close_round(self, *, update: bool = True) -> RoundTotals:
        """The round's counts, train losses and (if the strategy reads them) per-domain gradient
        sums over every process; the driver starts the next round from zero. With `update` False
        (the last round: no update follows) the gradient sums are dropped without communicating."""
        self.ranks.sum_([self.counts, self.loss_sums, self.loss_weights], self.meter, "comm", "round_counts")
        gradients = None
        if self.tap is not None and not update:
            self.tap.accumulator.reset()
        elif self.tap is not None:
            sums = self.tap.accumulator.tensors()
            self.ranks.sum_(sums, self.meter, "tap", "allreduce")
            if self.average_gradients and self.ranks.world_size > 1:
                sums[0].div_(self.ranks.world_size)
            gradients = self.tap.snapshot_and_reset()
        counts = self.counts.cpu().numpy().astype(np.int64)
        weights = self.loss_weights.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            train_losses = np.where(weights > 0, self.loss_sums.cpu().numpy() / np.where(weights > 0, weights, 1),
                                    np.nan)
        if Signal.TRAIN_LOSSES in self.signals and counts.sum() > 0 and not (weights > 0).any():
            raise MixbenchError(f"strategy {type(self.strategy).__name__} needs per-domain train losses, but none "
                                "were recorded: call record_losses(domain_ids, losses, tokens) after each forward")
        for tensor in (self.counts, self.loss_sums, self.loss_weights):
            tensor.zero_()
        self.steps_in_round = 0
        return RoundTotals(counts=counts, train_losses=train_losses, gradients=gradients)

    def update(self, totals: RoundTotals, *, round_index: int, step: int, probe: Probe,
               eval_losses: np.ndarray | None = None) -> Mixture:
        """The strategy's round-end hook on the feedback it declared; returns (and keeps) the
        mixture of the next round. `eval_losses` (m,) is required when it reads them."""
        wants = self.signals
        if Signal.EVAL_LOSSES in wants and eval_losses is None:
            raise ValueError(f"strategy {type(self.strategy).__name__} reads eval losses: pass eval_losses")
        feedback = RoundFeedback(
            round_index=round_index, step=step, mixture=self.mixture, counts=totals.counts,
            domain_gradients=totals.gradients if wants & GRADIENT_SIGNALS else None,
            eval_losses=np.asarray(eval_losses, dtype=np.float64) if Signal.EVAL_LOSSES in wants else None,
            train_losses=totals.train_losses if Signal.TRAIN_LOSSES in wants else None)
        with self.meter.timed("strategy", "update"):
            self.mixture = Mixture(self.strategy.update(feedback, probe), num_domains=self.num_domains)
        return self.mixture

    # -- resume -----------------------------------------------------------------------------------
    def round_tensors(self) -> list[torch.Tensor]:
        """The round in progress as plain tensors: counts, train-loss sums and weights, then the tap's."""
        tap = self.tap.accumulator.tensors() if self.tap is not None else []
        return [self.counts, self.loss_sums, self.loss_weights, *tap]

    def gather_round(self) -> None:
        """Copy every process's share of the round in progress to rank 0, changing none of them, so
        that rank 0's state_dict holds each share as it is: a resumed run adds each process's rest
        of the round to its own share, in the order the uninterrupted run adds them, and ends bit
        for bit as it does (pooling the shares into one would add the same floats in another order).
        Collective: every process calls it."""
        self._shares = self.ranks.gather_on_writer(self.round_tensors(), self.meter, "comm", "checkpoint") \
            if self.steps_in_round else None

    def state_dict(self) -> dict:
        """The strategy's state, the mixture and the round in progress: every process's share, as
        `gather_round` left them on rank 0 (else this process's alone). Tensors and plain data only."""
        shares, self._shares = getattr(self, "_shares", None) or [self.round_tensors()], None
        return {
            "format": STATE_FORMAT,
            "signals": sorted(s.value for s in self.signals),
            "strategy": encode(self.strategy.state_dict(), type(self.strategy).__name__),
            "mixture": encode(self.mixture, "the mixture"),
            "round": [[t.detach().cpu().clone() for t in share] for share in shares],
            "steps_in_round": self.steps_in_round,
        }

    def load_state_dict(self, state: dict, *, rank: int = 0, world_size: int = 1) -> None:
        """Continue from a `state_dict()`: each process takes up its own share of the round in
        progress. Saved by another number of processes, the shares are added up on rank 0 and the
        others start the rest of the round from zero (the same sums, added in another order)."""
        if state.get("format") != STATE_FORMAT:
            raise MixbenchError(f"the round state is of format {state.get('format')!r}, not {STATE_FORMAT}")
        mine = sorted(s.value for s in self.signals)
        if list(state["signals"]) != mine:
            raise MixbenchError(f"the saved round was driven for a strategy reading {state['signals'] or 'nothing'}, "
                                f"this one reads {mine or 'nothing'}")
        tensors, shares = self.round_tensors(), state["round"]
        if not shares or any(len(share) != len(tensors) or any(t.shape != v.shape for t, v in zip(tensors, share))
                             for share in shares):
            raise MixbenchError("the saved round's sums do not fit this run's (another --tap-memory or model?)")
        if len(shares) == world_size:
            own = shares[rank]
        else:
            own = [sum(parts[1:], parts[0].clone()) if rank == 0 else torch.zeros_like(parts[0])
                   for parts in zip(*shares)]
        for tensor, value in zip(tensors, own):
            tensor.copy_(value)
        self.strategy.load_state_dict(decode(state["strategy"]))
        self.mixture = decode(state["mixture"])
        self.steps_in_round = int(state["steps_in_round"])

    def describe_tap(self) -> str:
        """How the tap keeps its per-domain sums ("" when the strategy reads none)."""
        if self.tap is None:
            return ""
        acc = self.tap.accumulator
        halves = isinstance(acc, HalvesAccumulator)
        inner, unit = (acc.inner, "per domain half") if halves else (acc, "per domain")
        kind = f"sketched, {inner.rows} × {inner.shape[1]} {unit}" if inner.sketched else f"exact, {unit}"
        return f"{kind}, {acc.nbytes / MIB:.1f} MiB"

    def close(self) -> None:
        """Detach the tap (the head is a plain linear layer again); closing twice is harmless."""
        if self.tap is not None:
            self.tap.remove()


def _tap(head: nn.Module | None, m: int, meter: Meter, budget_mib: float, mode: str, seed: int,
         halves: bool) -> GradientTap:
    """The gradient tap on `head`, with exact per-domain sums if they fit the budget, else
    sketched ones; with `halves`, over two halves of each domain."""
    if not isinstance(head, nn.Linear):
        kind = "nothing" if head is None else f"a {type(head).__name__}"
        raise MixbenchError(f"the strategy reads domain gradients, and the model's final layer is {kind}, not an "
                            f"nn.Linear: the gradient tap splits the weight gradient of a linear output layer")
    shape = tuple(head.weight.shape)
    accumulator = make_accumulator(m, shape, head.weight.device, budget_mib, seed=seed, halves=halves, mode=mode)
    if accumulator.sketched and mode == "auto":
        slots = 2 * m if halves else m
        log.warning("the exact per-domain gradient sums would take %.1f MiB (over --tap-memory %g): sketching "
                    "them in %.1f MiB", exact_bytes(slots, shape) / MIB, budget_mib, accumulator.nbytes / MIB)
    return GradientTap(head, m, meter, accumulator=accumulator)


def _fitting(hook, num_domains: int) -> Mixture:
    """The mixture a start or prepare hook returns; a ValueError it raises (a hyperparameter that
    does not fit this run, a probe size, say) is the user's, in one line."""
    try:
        return Mixture(hook(), num_domains=num_domains)
    except MixbenchError:
        raise
    except ValueError as exc:
        raise MixbenchError(str(exc)) from None
