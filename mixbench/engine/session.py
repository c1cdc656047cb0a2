"""The operations on a run in progress that the training loop and the probe share: a training
step on a mixture, the record of a step, a per-domain evaluation, one batch's gradient, a branch.

The loop (trainer.py) and the probe (probe.py) both go through these, so a probe's training step
is the very same step as the loop's, recorded and metered the same way.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from mixbench.config import TrainConfig
from mixbench.engine.callbacks import TrainCallback
from mixbench.engine.distributed import SINGLE, SingleProcess, StepLoss
from mixbench.engine.schedule import cosine_schedule
from mixbench.engine.state import RunState, StepResult
from mixbench.errors import TrainingDiverged
from mixbench.mixture import Mixture
from mixbench.probe import BatchLosses, FrozenModel, Weigh, check_weights
from mixbench.workloads import Evaluation, Split, Workload
from mixbench.workloads.base import evaluating


class FrozenRunModel(FrozenModel):
    """A detached copy of the run's model (no gradients), for a strategy's reference losses."""

    def __init__(self, model: torch.nn.Module):
        self.model = copy.deepcopy(model).requires_grad_(False)
        for module in self.model.modules():   # the copy must not feed the run's gradient tap
            module._forward_hooks.clear()


@dataclass(frozen=True)
class RunSetup:
    """What a run trains on and how; fixed for the whole run."""

    cfg: TrainConfig
    workload: Workload
    train_split: Split
    eval_split: Split
    device: torch.device
    num_domains: int
    ranks: SingleProcess = SINGLE    # the processes training the model together (data parallel)


class TrainingSession:
    def __init__(self, setup: RunSetup, state: RunState, callbacks: Sequence[TrainCallback] = ()):
        self.setup, self.state, self.callbacks = setup, state, list(callbacks)
        self.lr_at = cosine_schedule(setup.cfg.lr, setup.cfg.steps, setup.cfg.warmup_fraction)
        # Forward FLOPs of one example are 2·N·tokens_per_example; a training step costs 3×.
        self.example_flops = 2 * setup.workload.num_params() * setup.workload.tokens_per_example
        self.in_branch = False
        # What the run's own training steps go through (DDP in a data-parallel run); a branch's
        # steps use the plain model, whole on every rank.
        self.trained = setup.ranks.wrap(state.model)

    @property
    def steps_left(self) -> int:
        return self.setup.cfg.steps - self.state.step

    # -- training ------------------------------------------------------------------------------
    def train_step(self, mixture: Mixture, weigh: Weigh | None = None,
                   reference: FrozenRunModel | None = None) -> StepResult:
        """One optimiser step on a batch drawn from `mixture`: sample → forward/backward (the round
        driver counting its examples and tapping the head) → step. Inside a branch it is the
        strategy's overhead, outside the round, and undone on exit; there `weigh` may set
        per-example loss weights after seeing the batch's losses (and `reference`'s on the same
        examples). In a data-parallel run every rank draws the same batch and trains on its slice
        (a branch's steps: on all of it)."""
        setup, state = self.setup, self.state
        if weigh is not None and not self.in_branch:
            raise RuntimeError("weighted training steps are only allowed inside a branch")
        category, label = ("strategy", "probe_train") if self.in_branch else ("train", "step")
        ranks, module = (SINGLE, state.model) if self.in_branch else (setup.ranks, self.trained)
        rows = state.sampler.draw_unit(mixture)                 # (B,) the global batch
        domains = state.sampler.domain_ids[rows]
        mine = ranks.share(len(rows))                           # this rank's rows of it
        batch = setup.train_split.batch(rows[mine], setup.device)
        ids = torch.from_numpy(domains[mine]).to(setup.device)
        in_round = not self.in_branch                           # a branch's steps are no part of the round
        with state.meter.timed(category, label):
            with state.driver.batch(ids) if in_round else nullcontext(), setup.workload.using(module):
                out = setup.workload.loss(batch)
            if weigh is None:
                loss = ranks.combine(out, state.meter)   # the global batch's mean; this rank's share to back-propagate
            else:
                loss = StepLoss.whole(out, self._weighted_loss(out, domains, weigh, reference, batch))
            state.optimizer.zero_grad(set_to_none=True)
            loss.objective.backward()
            torch.nn.utils.clip_grad_norm_(state.model.parameters(), setup.cfg.grad_clip)
            for group in state.optimizer.param_groups:
                group["lr"] = self.lr_at(state.step)
            state.optimizer.step()
        if in_round:   # this rank's per-example losses, for the round's per-domain train losses
            state.driver.record_losses(ids, out.row_loss, out.row_weight)
        state.meter.add_flops(category, label, 3 * self.example_flops * len(rows[mine]))   # this rank's work
        state.step += 1
        return StepResult(step=state.step, loss=loss.value, rows=rows, domains=domains, row_loss=loss.row_loss,
                          row_weight=loss.row_weight)

    def _weighted_loss(self, out, domains: np.ndarray, weigh: Weigh, reference: FrozenRunModel | None,
                       batch) -> torch.Tensor:
        """Σ_x w_x·row_loss_x with the weights `weigh` picks from the batch's losses."""
        def numpy(tensor):
            return None if tensor is None else tensor.detach().double().cpu().numpy()

        ref = None
        if reference is not None:
            with torch.no_grad(), evaluating(reference.model), self.setup.workload.using(reference.model):
                ref = self.setup.workload.loss(batch)
            self.state.meter.add_flops("strategy", "reference_forward", self.example_flops * len(domains))
        losses = BatchLosses(domains=domains, row_loss=numpy(out.row_loss), row_weight=numpy(out.row_weight),
                             reference_loss=None if ref is None else numpy(ref.row_loss),
                             token_loss=numpy(out.token_loss),
                             reference_token_loss=None if ref is None else numpy(ref.token_loss))
        weights = check_weights(weigh(losses), losses)
        return (out.row_loss * torch.as_tensor(weights, dtype=out.row_loss.dtype, device=out.row_loss.device)).sum()

    def freeze(self) -> FrozenRunModel:
        return FrozenRunModel(self.state.model)

    def record(self, result: StepResult) -> None:
        """Book a step of the run's own model: the history, the round driver (the strategy's
        per-step hook), the callbacks (progress, tracking)."""
        state = self.state
        if not math.isfinite(result.loss):   # the weights are no longer numbers: stop, say where
            raise TrainingDiverged(result.step, result.loss)
        state.history.train_losses.append(result.loss)
        state.history.tokens_trained += round(self.setup.workload.tokens_per_example * len(result.domains))
        state.driver.end_step(result.step, result.loss)
        for callback in self.callbacks:
            callback.on_step(result)

    # -- measuring -----------------------------------------------------------------------------
    def evaluate(self, category: str, label: str = "eval") -> Evaluation:
        """Per-domain eval loss on the fixed eval subset (NaN where a domain has none), and the
        workload's other metrics."""
        setup, meter = self.setup, self.state.meter
        with meter.timed(category, label):
            result = setup.workload.evaluate(setup.eval_split, setup.num_domains, setup.cfg.batch_size, setup.device)
        meter.add_flops(category, label, self.example_flops * len(setup.eval_split))
        return result

    def batch_gradient(self, domain: int | None, category: str, label: str, size: int | None = None) -> np.ndarray:
        """Flattened gradient of the loss of one batch (`size` rows, the run's batch size by
        default) w.r.t. every parameter, without stepping. `domain` None draws the batch from the
        eval set (the target), else from that training domain. Parameter .grad and the tap's
        accumulators are left untouched."""
        setup, state = self.setup, self.state
        split = setup.eval_split if domain is None else setup.train_split
        pool = np.arange(len(split)) if domain is None else np.flatnonzero(split.domain_ids.numpy() == domain)
        if pool.size == 0:
            raise ValueError(f"no examples to draw a gradient batch from (domain {domain})")
        rows = pool[state.probe_rng.integers(pool.size, size=size or setup.cfg.batch_size)]
        batch = split.batch(rows, setup.device)
        params = [p for p in state.model.parameters() if p.requires_grad]
        with state.meter.timed(category, label):
            grads = torch.autograd.grad(setup.workload.loss(batch).loss, params)
        state.meter.add_flops(category, label, 3 * self.example_flops * len(rows))
        return torch.cat([g.reshape(-1) for g in grads]).detach().float().cpu().numpy()

    def batch_gradients(self, sources, category: str, label: str) -> np.ndarray:
        """(k, D): the run's batch size split equally among `sources` (the first ones take the
        remainder; one row each at least), each share's gradient as `batch_gradient` takes it."""
        base, extra = divmod(self.setup.cfg.batch_size, len(sources))
        sizes = [max(1, base + (i < extra)) for i in range(len(sources))]
        return np.stack([self.batch_gradient(s, category, label, n) for s, n in zip(sources, sizes)])

    # -- branching -----------------------------------------------------------------------------
    @contextmanager
    def branch(self):
        """Everything inside (training steps included) is undone on exit: the model, optimiser,
        sampler and step counter return to where they were."""
        if self.in_branch:
            raise RuntimeError("branches do not nest")
        state = self.state
        saved = (copy.deepcopy(state.model.state_dict()), copy.deepcopy(state.optimizer.state_dict()),
                 state.sampler.state_dict(), state.step)
        self.in_branch = True
        try:
            yield
        finally:
            state.model.load_state_dict(saved[0])
            state.optimizer.load_state_dict(saved[1])
            state.sampler.load_state_dict(saved[2])
            state.step = saved[3]
            self.in_branch = False
