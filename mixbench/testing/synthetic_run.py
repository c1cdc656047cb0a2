"""A synthetic run: a strategy driven through the real RoundDriver as mixbench's trainer drives
it, on batches made up on the spot, for the conformance kit.

The model is one tiny linear head (HIDDEN → VOCAB, no bias) on random activations with random
targets. Each step draws its examples with the real MixtureSampler over the context's domain
sizes, runs the head's forward inside `driver.batch(ids)` (the tap splits the head's weight
gradient by domain), back-propagates the mean cross entropy, records each example's loss and ends
the step; at each round end the driver's totals, and synthetic per-domain eval losses for a
strategy that reads them, go to the strategy's update. So a strategy's feedback is built here by
the code that builds it in a run, from exactly the signals it declares. The head is never
stepped: a step's job is to make the round's signals, not to learn.

Rounds follow the trainer's loop: round r trains up to step min((r + 1)·K, total); a strategy's
probe steps are steps of the run, counted in the round in progress, and may leave a round nothing
to do; there is no update after the budget is spent.

Kinds of run (of feedback):
    random     random activations and targets; eval losses uniform in [1, 5]
    zero       the loop takes no step of its own, so a round draws no examples (counts and gradient
               sums zero, train losses NaN); eval losses are zero, a probe's batches have zero
               activations (zero gradients)
    nonfinite  NaN and inf in every batch's activations (so in the gradients and train losses of
               their domains) and in the eval losses
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mixbench.engine.rounds import RoundDriver
from mixbench.engine.sampler import MixtureSampler
from mixbench.mixture import Mixture
from mixbench.probe import BatchLosses, check_weights
from mixbench.strategy import MixingStrategy, RunContext
from mixbench.testing.synthetic_probe import SyntheticProbe
from mixbench.testing.watched import watch

HIDDEN, VOCAB = 4, 6   # the head: its weight gradient, a domain's gradient sum, has 24 entries
BATCH = 8              # examples per step
KINDS = ("random", "zero", "nonfinite")


def on_one_thread(work: Callable) -> Callable:
    """`work` with torch on one thread. The synthetic tensors hold a few dozen numbers: waking a
    pool of threads for each op costs more than the op, and on a busy machine (tests running side
    by side) tens of milliseconds an op, seconds a check."""
    @functools.wraps(work)
    def one_thread(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return work(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return one_thread


@dataclass(frozen=True)
class Batch:
    """One step's examples: their domains (B,), activations (B, HIDDEN) and targets (B,)."""

    domains: np.ndarray
    activations: torch.Tensor
    targets: torch.Tensor


class SyntheticRun:
    """`strategy` over the run `ctx` describes, with synthetic batches of `kind`; `seed` seeds the
    batches and eval losses (the sampler follows the run's seed, `ctx.seed`)."""

    def __init__(self, strategy: MixingStrategy, ctx: RunContext, *, kind: str = "random", seed: int = 0,
                 watch_inputs: bool = False):
        if kind not in KINDS:
            raise ValueError(f"unknown kind of run {kind!r}: one of {', '.join(KINDS)}")
        self.ctx, self.kind = ctx, kind
        self.num_domains = m = ctx.num_domains
        self.batch_size = BATCH
        self.rng = np.random.default_rng(seed)
        self.head = nn.Linear(HIDDEN, VOCAB, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(np.random.default_rng([seed, 1]).normal(size=(VOCAB, HIDDEN))))
        self.probe = SyntheticProbe(self, strategy.signals, strategy.capabilities)
        self.strategy = watch(strategy, self.probe, num_domains=m, kind=kind, watch_inputs=watch_inputs)
        self.driver = RoundDriver(self.strategy, num_domains=m, head=self.head, tap_sums="exact")
        self.sampler = MixtureSampler(np.repeat(np.arange(m), ctx.train_sizes), m, batch_size=BATCH, seed=ctx.seed)
        self.step, self.round_index = 0, 0
        self.mixtures: list[Mixture] = []            # p_0 (after prepare), then every update's
        self.round_batches: list[Batch] = []         # the round in progress
        self.rounds: dict[int, list[Batch]] = {}     # each closed round's batches, by round

    @property
    def steps_left(self) -> int:
        return self.ctx.total_steps - self.step

    # -- the loop -----------------------------------------------------------------------------------
    @on_one_thread
    def begin(self) -> Mixture:
        """start, then prepare: p_0."""
        self.driver.start(self.ctx)
        self.mixtures.append(self.driver.prepare(self.probe))
        return self.mixtures[-1]

    @on_one_thread
    def run(self, stop_at: int | None = None) -> list[Mixture]:
        """Go on to the end of the run, or stop before the loop's first own step at or after step
        `stop_at` (inside a round, for a resume); returns the mixtures chosen meanwhile."""
        known = len(self.mixtures)
        K, total = self.ctx.steps_per_round, self.ctx.total_steps
        while self.round_index < self.ctx.num_rounds:
            round_end = min((self.round_index + 1) * K, total)
            while self.kind != "zero" and self.step < round_end:   # a probe may have taken the round's steps
                if stop_at is not None and self.step >= stop_at:
                    return self.mixtures[known:]
                self.train_step(self.driver.mixture)
            self.end_round()
        return self.mixtures[known:]

    def end_round(self) -> None:
        ended = self.round_index
        totals = self.driver.close_round()
        self.rounds[ended], self.round_batches = self.round_batches, []
        # The update's probe steps, if it takes any, are the next round's.
        self.round_index = self.strategy.round_index = ended + 1
        if self.step < self.ctx.total_steps:   # after the budget there is no next mixture to choose
            eval_losses = self.eval_losses() if self.driver.needs_eval_losses else None
            self.mixtures.append(self.driver.update(totals, round_index=ended, step=self.step, probe=self.probe,
                                                    eval_losses=eval_losses))

    def train_step(self, mixture: Mixture) -> float:
        """One step of the run on `mixture`: the loop's own, or a probe step."""
        batch = self.draw(mixture)
        with self.driver.batch(torch.from_numpy(batch.domains)):
            row_loss = self.row_losses(batch)                               # (B,)
        loss = row_loss.mean()
        torch.autograd.grad(loss, self.head.weight)   # the backward: the tap adds each domain's share
        self.driver.record_losses(batch.domains, row_loss)
        self.step += 1
        self.round_batches.append(batch)
        value = loss.item()
        self.driver.end_step(self.step, value)
        return value

    def scratch_step(self, mixture: Mixture, weigh=None, with_reference: bool = False) -> float:
        """One step of a branch: untapped, uncounted; with `weigh`, the strategy's weights on the
        batch's losses (a frozen reference scores as the model does: the head never changes)."""
        batch = self.draw(mixture)
        with torch.no_grad():
            row_loss = self.row_losses(batch).double().numpy()
        if weigh is None:
            return float(row_loss.mean())
        shown = BatchLosses(domains=batch.domains, row_loss=row_loss, row_weight=np.ones_like(row_loss),
                            reference_loss=row_loss.copy() if with_reference else None)
        return float(check_weights(weigh(shown), shown) @ row_loss)

    # -- what a step and the probe compute ------------------------------------------------------------
    def draw(self, mixture: Mixture) -> Batch:
        domains = self.sampler.domain_ids[self.sampler.draw_unit(mixture)]
        return Batch(domains, *self.made_up(domains.size))

    def made_up(self, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Activations (rows, HIDDEN) and targets (rows,) of this run's kind."""
        activations = self.rng.normal(size=(rows, HIDDEN))
        if self.kind == "zero":
            activations[:] = 0.0
        elif self.kind == "nonfinite":
            activations[0, 0], activations[-1, -1] = np.nan, np.inf
        targets = self.rng.integers(VOCAB, size=rows)
        return torch.from_numpy(activations).float(), torch.from_numpy(targets)

    def row_losses(self, batch: Batch) -> torch.Tensor:
        """(B,) each example's cross entropy under the head."""
        return F.cross_entropy(self.head(batch.activations), batch.targets, reduction="none")

    def batch_gradient(self, rows: int) -> np.ndarray:
        """The head's flattened weight gradient on a made-up batch of `rows` examples (a probe's
        extra batch: untapped, uncounted)."""
        batch = Batch(np.zeros(rows, dtype=np.int64), *self.made_up(rows))
        (grad,) = torch.autograd.grad(self.row_losses(batch).mean(), self.head.weight)
        return grad.double().numpy().reshape(-1)

    def eval_losses(self) -> np.ndarray:
        """(m,) per-domain eval losses of this run's kind."""
        if self.kind == "zero":
            return np.zeros(self.num_domains)
        losses = self.rng.uniform(1, 5, size=self.num_domains)
        if self.kind == "nonfinite":
            losses[:] = np.nan
            losses[-1] = np.inf
        return losses

    # -- resume -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """What a checkpoint holds, as the trainer's does: the driver (the strategy, the mixture
        and the round in progress), the sampler, and the loop's own position and generator."""
        return {"driver": self.driver.state_dict(), "sampler": self.sampler.state_dict(),
                "rng": self.rng.bit_generator.state, "step": self.step, "round_index": self.round_index}

    def load_state_dict(self, state: dict) -> None:
        self.driver.load_state_dict(state["driver"])
        self.sampler.load_state_dict(state["sampler"])
        self.rng.bit_generator.state = state["rng"]
        self.step, self.round_index = state["step"], state["round_index"]
        self.strategy.round_index = self.round_index
