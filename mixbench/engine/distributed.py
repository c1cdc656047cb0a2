"""Data parallel on torch.distributed: N processes ("ranks") train one model together.

    torchrun --nproc-per-node N -m mixbench run ...      (or: mixbench run --nproc N ...)

How a run is shared, and why each choice keeps it equal to the one-process run:

  batches     every rank draws the whole global batch from the same generator (same seed) and
              keeps its contiguous 1/N slice: the global batch is the one-process batch.
  loss        each rank back-propagates Σ (its rows' losses) / Σ (the global batch's weights),
              its share of the global batch's mean (text: the mean over response tokens), and
              DDP *sums* the gradients (a comm hook; DDP's default would average): the sum is the
              one-process gradient. The weights come from one all-gather per step of every row's
              loss and weight, which also gives every rank the step's record (loss, per-domain
              losses) that strategies read, identically.
  the tap     sees its rank's share of the head's gradient; the per-domain sums and counts are
              all-reduced (SUM) once per round, before the strategy's update: the sums of the
              one-process run. A checkpoint mid-round copies every rank's share to rank 0, which
              saves them all, each changed in no way: a resumed rank takes up its own share, and
              the round's all-reduce adds the same floats in the same order as the uninterrupted
              run's (a resumed run equals it bit for bit, as a one-process run does).
  evaluation  done whole, identically, on every rank: the eval subset is small and fixed, and
              a strategy that reads eval losses then decides the same on every rank with no
              broadcast.
  strategies  every rank runs the same strategy code on the same inputs (the all-reduced sums,
              the gathered step records, the same eval losses, the same probe generator), so
              their mixtures agree. Probes are collective: a probe's training steps on the run's
              model are data-parallel steps like the loop's; scratch work in a branch (Skill-It's
              graph runs, DoReMi's and DoGE's proxies) and probe gradients run whole on every
              rank, on the plain model, with no communication.
  writing     rank 0 alone writes results, checkpoints and MLflow; every rank reads the same
              checkpoint to resume, which records the world size (another is refused).
  signals     at the end of each step the ranks agree whether any of them was interrupted,
              so all stop after the same step and rank 0's checkpoint is of it.

gloo on CPU, NCCL on CUDA (each rank on the GPU of its local rank). The contrastive image-text
loss compares each example with the rest of its batch, which a rank's slice does not hold: those
tasks train in one process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from mixbench.engine.meter import Meter
from mixbench.engine.orphans import end_with_parent
from mixbench.errors import MixbenchError
from mixbench.workloads import BatchLoss


@dataclass(frozen=True)
class StepLoss:
    """One training step's loss, as the backward and the run's record need it."""

    objective: torch.Tensor   # what this process back-propagates
    value: float              # the global batch's loss
    row_loss: np.ndarray      # (B,) every row of the global batch, in batch order
    row_weight: np.ndarray    # (B,)

    @classmethod
    def whole(cls, out: BatchLoss, loss: torch.Tensor) -> StepLoss:
        """A batch computed whole in this process."""
        return cls(loss, float(loss.detach()), out.row_loss.detach().double().cpu().numpy(),
                   out.row_weight.detach().double().cpu().numpy())


class SingleProcess:
    """A run of one process: each method is what one process does, so the trainer calls them
    unconditionally."""

    rank = 0
    world_size = 1
    writer = True   # writes results, checkpoints and MLflow

    def place(self, device: torch.device) -> torch.device:
        return device

    def check(self, modality: str, batch_size: int) -> None:
        """Refuse, in one line, a run these ranks cannot share."""

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the run's training steps go through."""
        return model

    def share(self, batch_size: int) -> slice:
        """This process's rows of a global batch."""
        return slice(0, batch_size)

    def combine(self, out: BatchLoss, meter: Meter) -> StepLoss:
        """The step's loss from this process's rows (`out`)."""
        return StepLoss.whole(out, out.loss)

    def sum_(self, tensors: Sequence[torch.Tensor], meter: Meter, category: str, label: str) -> None:
        """Sum each tensor over the ranks, in place."""

    def gather_on_writer(self, tensors: Sequence[torch.Tensor], meter: Meter, category: str,
                         label: str) -> list[list[torch.Tensor]] | None:
        """Every rank's `tensors`, in rank order, on rank 0 (None elsewhere); none is changed."""
        return [list(tensors)]

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any rank."""
        return flag

    def check_same(self, value: str, what: str) -> None:
        """Refuse a run whose ranks disagree on `value`."""

    @contextmanager
    def writer_first(self) -> Iterator[None]:
        """Rank 0 runs the block first, the others after it (they then read what it cached)."""
        yield

    def leave(self) -> None:
        """Leave the process group."""


SINGLE = SingleProcess()


class DataParallel(SingleProcess):
    """One rank of a torchrun job (the process group is already joined)."""

    def __init__(self, rank: int, world_size: int, local_rank: int):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.writer = rank == 0

    def place(self, device: torch.device) -> torch.device:
        if device.type != "cuda":
            return device
        if device.index is not None:
            raise MixbenchError(f"--device {device} picks one GPU; in a data-parallel run each process takes the GPU "
                                "of its local rank: use --device cuda (or auto)")
        if self.local_rank >= torch.cuda.device_count():
            raise MixbenchError(f"local rank {self.local_rank} has no GPU ({torch.cuda.device_count()} visible): "
                                "start at most one process per GPU")
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def check(self, modality: str, batch_size: int) -> None:
        if modality != "text":
            raise MixbenchError(f"data-parallel training is for text tasks: this task is {modality}, whose "
                                "contrastive loss compares each example with the rest of its batch; run it in "
                                "one process")
        if batch_size % self.world_size:
            raise MixbenchError(f"--batch-size {batch_size} does not split evenly over {self.world_size} "
                                "processes: use a multiple of their number")

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        # The models' buffers are constants: no need to broadcast them at every forward.
        ddp = DistributedDataParallel(model, forward_sync_buffers=False)
        ddp.register_comm_hook(None, _sum_gradients)
        self.gradient_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
        return ddp

    def share(self, batch_size: int) -> slice:
        per_rank = batch_size // self.world_size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    def combine(self, out: BatchLoss, meter: Meter) -> StepLoss:
        import torch.distributed as dist

        mine = torch.stack([out.row_loss.detach().double(), out.row_weight.detach().double()])   # (2, B/N)
        parts = [torch.empty_like(mine) for _ in range(self.world_size)]
        with meter.timed("comm", "step_losses"):
            dist.all_gather(parts, mine)
        meter.add_bytes("comm", "step_losses", mine.numel() * mine.element_size() * self.world_size)
        # DDP's all-reduce of every gradient, once per step (its seconds are inside the backward's).
        meter.add_bytes("comm", "gradients", self.gradient_bytes)
        row_loss, row_weight = torch.cat(parts, dim=1).cpu()                       # (B,) each, in batch order
        total_weight = row_weight.sum().clamp(min=1)
        objective = out.row_loss.sum() / total_weight.to(out.row_loss.device, out.row_loss.dtype)
        return StepLoss(objective, float(row_loss.sum() / total_weight), row_loss.numpy(), row_weight.numpy())

    def sum_(self, tensors: Sequence[torch.Tensor], meter: Meter, category: str, label: str) -> None:
        import torch.distributed as dist

        with meter.timed(category, label):
            for tensor in tensors:
                dist.all_reduce(tensor)
        meter.add_bytes(category, label, sum(t.numel() * t.element_size() for t in tensors))

    def gather_on_writer(self, tensors: Sequence[torch.Tensor], meter: Meter, category: str,
                         label: str) -> list[list[torch.Tensor]] | None:
        import torch.distributed as dist

        shares = [[torch.empty_like(t) for t in tensors] for _ in range(self.world_size)] if self.writer else None
        with meter.timed(category, label):
            for i, tensor in enumerate(tensors):
                dist.gather(tensor, [share[i] for share in shares] if self.writer else None, dst=0)
        meter.add_bytes(category, label, (self.world_size - 1) * sum(t.numel() * t.element_size() for t in tensors))
        return shares

    def any(self, flag: bool) -> bool:
        import torch.distributed as dist

        # On the CPU for gloo, on this rank's GPU for NCCL (which reduces only GPU tensors).
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        tensor = torch.tensor([int(flag)], device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def check_same(self, value: str, what: str) -> None:
        import torch.distributed as dist

        values = [None] * self.world_size
        dist.all_gather_object(values, value)
        if len(set(values)) > 1:
            raise MixbenchError(f"the {self.world_size} processes do not agree on {what}: each must load the same "
                                "data (on several nodes: the same task files and regroup cache)")

    @contextmanager
    def writer_first(self) -> Iterator[None]:
        import torch.distributed as dist

        if not self.writer:
            dist.barrier()
        try:
            yield
        finally:
            if self.writer:
                dist.barrier()

    def leave(self) -> None:
        leave_process_group()


def leave_process_group() -> None:
    """Leave torch.distributed's process group, if joined, and free it, so that no communication
    thread outlives the interpreter: a gloo worker that drops a tensor once the interpreter is
    finalising takes the GIL, and the process aborts ("terminate called without an active
    exception") after a run that went well. Call it last, on every rank.

    Freeing the group takes two things destroy_process_group does not do: collecting the DDP
    modules that used it (a DDP module is usually in a reference cycle by its end: hooks, a
    trainer holding it) and releasing torch.distributed.nn's hold on it (below)."""
    import gc

    import torch.distributed as dist

    gc.collect()
    if dist.is_initialized():
        _release_default_arguments(dist.group.WORLD)
        dist.destroy_process_group()


def _release_default_arguments(group) -> None:
    """torch.distributed.nn.functional binds `group=group.WORLD` as a default argument of each of
    its collectives when it is imported (torch 2.13: torch/distributed/nn/functional.py, lines 32
    to 267). Imported after the group formed, as DDP's constructor does through torch._dynamo,
    those ten defaults hold the group for good: destroy_process_group forgets it but cannot free
    it, and its threads live until the interpreter is gone. None means the same to each of those
    functions (the default group), so they behave as before."""
    import inspect
    import sys

    functional = sys.modules.get("torch.distributed.nn.functional")
    if functional is None:
        return
    for function in vars(functional).values():
        defaults = getattr(function, "__defaults__", None) if inspect.isfunction(function) else None
        if defaults and any(value is group for value in defaults):
            function.__defaults__ = tuple(None if value is group else value for value in defaults)


def _sum_gradients(process_group, bucket):
    """DDP comm hook: the ranks' gradients summed, not averaged (each rank's loss is already its
    share of the global batch's mean)."""
    import torch.distributed as dist

    return (dist.all_reduce(bucket.buffer(), group=process_group, async_op=True)
            .get_future().then(lambda fut: fut.value()[0]))


def current_ranks() -> SingleProcess:
    """The processes of the torch.distributed group this process has already joined (a user's own
    torchrun job, in the integrations): DataParallel when there are several, else SINGLE."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return SINGLE
    return DataParallel(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def launched_world_size() -> int:
    """How many processes torchrun started for this job (1 when not started by torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def join(device_name: str) -> SingleProcess:
    """This process's ranks: DataParallel, with the process group joined, when torchrun started
    it as one of several processes (WORLD_SIZE > 1); else SINGLE. gloo on CPU, NCCL on CUDA."""
    world_size = launched_world_size()
    if world_size <= 1:
        return SINGLE
    import torch.distributed as dist

    # A rank ends with the launcher that started it: killed outright, it could not stop the ranks.
    end_with_parent()
    ranks = DataParallel(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    cuda = _wants_cuda(device_name)
    if cuda:   # before the group forms: NCCL's collectives run on the current GPU
        check_gpus(device_name, ranks.local_rank + 1)
        torch.cuda.set_device(ranks.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return ranks


def check_gpus(device_name: str, processes: int) -> None:
    """Refuse, in one line, more processes on this machine than it has GPUs, for a CUDA run."""
    if _wants_cuda(device_name) and processes > torch.cuda.device_count():
        raise MixbenchError(f"{processes} processes on CUDA need {processes} GPUs; this machine has "
                            f"{torch.cuda.device_count()} (use fewer, or --device cpu)")


def _wants_cuda(device_name: str) -> bool:
    return device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
