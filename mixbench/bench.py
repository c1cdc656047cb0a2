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
import torch.nn.functional as F

from mixbench.data import IGNORE, EncodedSplit
from mixbench.evaluation import per_domain_loss
from mixbench.meter import Meter
from mixbench.mixture import Mixture
from mixbench.sampler import MixtureSampler


@dataclass(frozen=True)
class StepResult:
    step: int                  # the step number just taken, from 1
    loss: float                # mean loss over the batch's response tokens
    domains: np.ndarray        # (B,) domain of each example
    row_loss: np.ndarray       # (B,) summed token loss per example
    row_tokens: np.ndarray     # (B,) response tokens per example


class Bench:
    def __init__(self, *, model, optimizer, train_split: EncodedSplit, eval_split: EncodedSplit,
                 sampler: MixtureSampler, meter: Meter, device, num_domains: int, n_params: int,
                 batch_size: int, total_steps: int, lr_at: Callable[[int], float], grad_clip: float,
                 seed: int, tap=None):
        self.model, self.optimizer, self.sampler, self.meter = model, optimizer, sampler, meter
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
        self._eval_tokens = int(eval_split.inputs.numel())

    # -- training ------------------------------------------------------------------------------
    def train_step(self, mixture: Mixture, category: str = "train", label: str = "step") -> StepResult:
        """One optimiser step on a batch drawn from `mixture`. Inside a branch it is the
        strategy's overhead and the run does not see it."""
        rows, domains = self.sampler.sample(mixture, self.batch_size)
        x = self.train_split.inputs[rows].to(self.device)    # (B, T)
        y = self.train_split.targets[rows].to(self.device)   # (B, T)
        tapping = self.tap is not None and not self.in_branch
        with self.meter.timed(category, label):
            if tapping:
                self.tap.set_batch(torch.from_numpy(domains).to(self.device))
            with self._tap_paused(not tapping):
                token_loss = self._token_loss(x, y)           # (B, T)
                loss = token_loss.sum() / (y != IGNORE).sum().clamp(min=1)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(self.step)
            self.optimizer.step()
        self.meter.add_flops(category, label, 6 * self.n_params * x.numel())
        self.step += 1
        result = StepResult(step=self.step, loss=float(loss.detach()), domains=domains,
                            row_loss=token_loss.detach().sum(1).double().cpu().numpy(),
                            row_tokens=(y != IGNORE).sum(1).double().cpu().numpy())
        if not self.in_branch:
            self.tokens_trained += int(x.numel())
            for listener in self.step_listeners:
                listener(result)
        return result

    # -- measuring -----------------------------------------------------------------------------
    def evaluate(self, category: str, label: str = "eval") -> np.ndarray:
        """(m,) per-domain eval loss on the fixed eval subset (NaN where a domain has none)."""
        with self.meter.timed(category, label):
            losses = per_domain_loss(self.model, self.eval_split, self.m, self.batch_size, self.device)
        self.meter.add_flops(category, label, 2 * self.n_params * self._eval_tokens)
        return losses

    def batch_gradient(self, domain: int | None, category: str, label: str) -> np.ndarray:
        """Flattened gradient of the loss of one batch w.r.t. every parameter, without stepping.
        `domain` None draws the batch from the eval set (the target), else from that training
        domain. Parameter .grad and the tap's accumulators are left untouched."""
        split = self.eval_split if domain is None else self.train_split
        pool = np.arange(len(split)) if domain is None else np.flatnonzero(split.domain_ids.numpy() == domain)
        if pool.size == 0:
            raise ValueError(f"no examples to draw a gradient batch from (domain {domain})")
        rows = pool[self.probe_rng.integers(pool.size, size=self.batch_size)]
        x, y = split.inputs[rows].to(self.device), split.targets[rows].to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        with self.meter.timed(category, label), self._tap_paused(True):
            token_loss = self._token_loss(x, y)
            loss = token_loss.sum() / (y != IGNORE).sum().clamp(min=1)
            grads = torch.autograd.grad(loss, params)
        self.meter.add_flops(category, label, 6 * self.n_params * x.numel())
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
    def _token_loss(self, x, y):
        logits = self.model(x)  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                               ignore_index=IGNORE, reduction="none").view(y.shape)

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
