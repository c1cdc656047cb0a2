"""The live state of one training run, and the few operations on it that the loop and the probe
share: a training step on a mixture, a per-domain evaluation, one batch's gradient, a branch.

The training loop (trainer.py) and the probe (probe.py) both go through these methods, so a
probe's training step is the very same step as the loop's, metered the same way.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from mixbench.meter import Meter
from mixbench.mixture import Mixture
from mixbench.sampler import MixtureSampler
from mixbench.workload import Evaluation, Split, Workload


@dataclass(frozen=True)
class StepResult:
    step: int                  # the step number just taken, from 1
    loss: float                # the batch's loss (text: mean over its response tokens)
    domains: np.ndarray        # (B,) domain of each example
    row_loss: np.ndarray       # (B,) summed loss per example
    row_weight: np.ndarray     # (B,) what each example counts for (text: its response tokens)


class Bench:
    def __init__(self, *, workload: Workload, optimizer, train_split: Split, eval_split: Split,
                 sampler: MixtureSampler, meter: Meter, device, num_domains: int, n_params: int,
                 batch_size: int, total_steps: int, lr_at: Callable[[int], float], grad_clip: float,
                 seed: int, tap=None):
        self.workload, self.model = workload, workload.model
        self.optimizer, self.sampler, self.meter = optimizer, sampler, meter
        self.train_split, self.eval_split = train_split, eval_split
        self.device, self.m, self.n_params = device, num_domains, n_params
        self.batch_size, self.lr_at, self.grad_clip, self.tap = batch_size, lr_at, grad_clip, tap
        self.total_steps = total_steps
        # Probe batches come from their own stream, so probing never shifts the training batches.
        self.probe_rng = np.random.default_rng([seed, 1])
        self.step = 0                    # optimiser steps taken on the run's own model
        self.tokens_trained = 0
        self.in_branch = False
        self.step_listeners: list[Callable[[StepResult], None]] = []
        # Forward FLOPs of one example are 2·N·tokens_per_example; a training step costs 3×.
        self._example_flops = 2 * n_params * workload.tokens_per_example

    # -- training ------------------------------------------------------------------------------
    def train_step(self, mixture: Mixture, category: str = "train", label: str = "step") -> StepResult:
        """One optimiser step on a batch drawn from `mixture`. Inside a branch it is the
        strategy's overhead and the run does not see it."""
        rows, domains = self.sampler.sample(mixture, self.batch_size)
        batch = self.train_split.batch(rows, self.device)
        tapping = self.tap is not None and not self.in_branch
        with self.meter.timed(category, label):
            if tapping:
                self.tap.set_batch(torch.from_numpy(domains).to(self.device))
            with self._tap_paused(not tapping):
                out = self.workload.loss(batch)
                self.optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(self.step)
            self.optimizer.step()
        self.meter.add_flops(category, label, 3 * self._example_flops * len(rows))
        self.step += 1
        result = StepResult(step=self.step, loss=float(out.loss.detach()), domains=domains,
                            row_loss=out.row_loss.detach().double().cpu().numpy(),
                            row_weight=out.row_weight.detach().double().cpu().numpy())
        if not self.in_branch:
            self.tokens_trained += round(self.workload.tokens_per_example * len(rows))
            for listener in self.step_listeners:
                listener(result)
        return result

    # -- measuring -----------------------------------------------------------------------------
    def evaluate(self, category: str, label: str = "eval") -> Evaluation:
        """Per-domain eval loss on the fixed eval subset (NaN where a domain has none), and the
        workload's other metrics."""
        with self.meter.timed(category, label):
            result = self.workload.evaluate(self.eval_split, self.m, self.batch_size, self.device)
        self.meter.add_flops(category, label, self._example_flops * len(self.eval_split))
        return result

    def batch_gradient(self, domain: int | None, category: str, label: str) -> np.ndarray:
        """Flattened gradient of the loss of one batch w.r.t. every parameter, without stepping.
        `domain` None draws the batch from the eval set (the target), else from that training
        domain. Parameter .grad and the tap's accumulators are left untouched."""
        split = self.eval_split if domain is None else self.train_split
        pool = np.arange(len(split)) if domain is None else np.flatnonzero(split.domain_ids.numpy() == domain)
        if pool.size == 0:
            raise ValueError(f"no examples to draw a gradient batch from (domain {domain})")
        rows = pool[self.probe_rng.integers(pool.size, size=self.batch_size)]
        batch = split.batch(rows, self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        with self.meter.timed(category, label), self._tap_paused(True):
            grads = torch.autograd.grad(self.workload.loss(batch).loss, params)
        self.meter.add_flops(category, label, 3 * self._example_flops * len(rows))
        return torch.cat([g.reshape(-1) for g in grads]).detach().float().cpu().numpy()

    # -- branching -----------------------------------------------------------------------------
    @contextmanager
    def branch(self):
        """Everything inside (training steps included) is undone on exit: the model, optimiser,
        sampler and step counter return to where they were."""
        if self.in_branch:
            raise RuntimeError("branches do not nest")
        saved = (copy.deepcopy(self.model.state_dict()), copy.deepcopy(self.optimizer.state_dict()),
                 self.sampler.state_dict(), self.step)
        self.in_branch = True
        try:
            yield
        finally:
            self.model.load_state_dict(saved[0])
            self.optimizer.load_state_dict(saved[1])
            self.sampler.load_state_dict(saved[2])
            self.step = saved[3]
            self.in_branch = False

    # -- helpers -------------------------------------------------------------------------------
    @contextmanager
    def _tap_paused(self, pause: bool):
        if self.tap is None or not pause:
            yield
            return
        with self.tap.paused():
            yield


def cosine_schedule(peak: float, steps: int, warmup_fraction: float) -> Callable[[int], float]:
    """Linear warmup, then cosine decay to 10 % of the peak."""
    warmup = max(1, int(warmup_fraction * steps))

    def lr_at(step: int) -> float:
        if step < warmup:
            return peak * (step + 1) / warmup
        done = min(1.0, (step - warmup) / max(1, steps - warmup))
        return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * done)))

    return lr_at
