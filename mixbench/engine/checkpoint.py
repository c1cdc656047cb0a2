"""Checkpoints: everything a run has changed, so that a resumed run ends exactly as an
uninterrupted one would (bit for bit on a CPU).

One is written, atomically, at every round end, every `every` steps if asked, and when Ctrl-C
or a termination signal arrives during a training step (the signal waits for the step to end;
see interrupts.py). One arriving elsewhere (an evaluation, a strategy's update) ends the run
as before, and the last checkpoint is where a resume starts. A checkpoint holds tensors and
plain data only, so it loads with `torch.load(path, weights_only=True)`, and a digest of all of it
(mixbench/storage/digest.py), checked on load: torch verifies no checksum, so a flipped bit in a
tensor would otherwise resume silently into another run.

  identity    what the run is (task, strategy, hyperparameters, config, domains): a resume must match it
  notes       what the caller wants back on resume (when the run started, its MLflow run): not checked
  model, optimizer, step (the schedule's position), the sampler's streams and the probe's
  generator, torch / numpy / python global generators
  driver      the round driver's state: the strategy's state_dict() (through the codec), the
              mixture, and the round in progress (its counts, train-loss sums and the tap's sums)
  meter       FLOPs, seconds and bytes so far
  history     the record so far: initial evaluation, every round, every step's loss

In a data-parallel run rank 0 writes it, with every rank's share of the round's sums (see
distributed.py); every rank resumes from the same file, each taking up its own share.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mixbench.engine.codec import UnsavableState, decode, encode
from mixbench.engine.distributed import SINGLE, SingleProcess
from mixbench.engine.history import RoundRecord, RunHistory
from mixbench.engine.interrupts import held_signals
from mixbench.engine.state import RunState
from mixbench.errors import MixbenchError
from mixbench.storage.atomic import write_atomic
from mixbench.storage.digest import DIGEST_KEY, DamagedFile, check_digest, content_digest

log = logging.getLogger(__name__)

FORMAT = "mixbench-checkpoint"
# Raise when the layout below changes: an older checkpoint is then refused. 2: the round driver's
# state, and the shuffled-pass sampler (format 1's i.i.d. sampler state cannot continue in it).
# 3: a content digest of the whole payload.
FORMAT_VERSION = 3
_PARTS = ("identity", "notes", "step", "model", "optimizer", "sampler", "probe_rng", "rng", "driver", "meter",
          "history")
# History fields the run sets up from its data before training: checked against the checkpoint's, not restored.
_SETUP_FIELDS = ("domains", "eval_proportions", "reference_domains", "reference_proportions", "eval_rows",
                 "num_params")
_NOT_SAVED = ("meter", "shape", "device", "world_size")   # the meter is saved on its own; the others are the run's own


class CheckpointError(MixbenchError):
    """A checkpoint that cannot be resumed from: missing, damaged, or made by another run."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read back from disk."""

    path: Path
    payload: dict

    @property
    def step(self) -> int:
        return self.payload["step"]

    @property
    def rounds_done(self) -> int:
        return len(self.payload["history"]["rounds"])

    @property
    def identity(self) -> dict:
        return self.payload["identity"]

    @property
    def notes(self) -> dict:
        return self.payload["notes"]

    @property
    def domains(self) -> list[str]:
        return list(decode(self.payload["history"]["domains"]))

    def differences(self, identity: dict) -> list[str]:
        """How the run described by `identity` differs from the one that wrote this checkpoint,
        one phrase per difference (empty: it can be resumed)."""
        out = []
        saved = self.identity
        for key in dict.fromkeys([*identity, *saved]):
            then, now = saved.get(key), identity.get(key)
            if isinstance(then, dict) and isinstance(now, dict):
                out += [f"{key} {name} ({_show(then.get(name))} in the checkpoint, {_show(now.get(name))} now)"
                        for name in dict.fromkeys([*now, *then]) if then.get(name) != now.get(name)]
            elif then != now:
                out.append(f"{key} ({_show(then)} in the checkpoint, {_show(now)} now)")
        return out


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint; CheckpointError in one line if there is none or it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # truncated, garbage, or pickled code weights_only refuses: all the same to a user
        raise CheckpointError(f"{path} is damaged or not a mixbench checkpoint ({_first_line(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a mixbench checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} was written in checkpoint format {payload.get('format_version')!r}; this "
                              f"mixbench reads format {FORMAT_VERSION} only")
    missing = [part for part in _PARTS if part not in payload]
    if missing:
        raise CheckpointError(f"{path} is damaged (it lacks {', '.join(missing)})")
    try:
        check_digest(payload, path)
    except DamagedFile as exc:
        raise CheckpointError(str(exc)) from None
    except TypeError as exc:   # a value no checkpoint holds: not one mixbench wrote
        raise CheckpointError(f"{path} is damaged or not a mixbench checkpoint ({exc})") from None
    if isinstance(payload["identity"], dict):   # written before data-parallel runs: by one process
        payload["identity"].setdefault("world size", 1)
    return Checkpoint(path, payload)


def older_checkpoint(path: Path, age: int) -> Path:
    """Where the checkpoint written `age` saves before the latest is kept: PATH.1, PATH.2, ..."""
    return path.with_name(f"{path.name}.{age}")


@dataclass(frozen=True)
class CheckpointPlan:
    """Where a run writes its checkpoints and how often, what they must match to be resumed, and
    the checkpoint it resumes from (None: it starts afresh)."""

    path: Path | None = None       # the latest; None writes none
    every: int | None = None       # also every this many steps within a round (round ends always)
    keep: int = 1                  # the latest and keep - 1 older ones, beside it as PATH.1, PATH.2, ...
    identity: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)   # may be filled in after the plan is made
    resume: Checkpoint | None = None
    written: list[int] = field(default_factory=list)   # the step of each checkpoint this run wrote, in order


class Checkpointer:
    """Writes a run's checkpoints as the plan says, and restores a run from one."""

    def __init__(self, plan: CheckpointPlan | None, state: RunState, ranks: SingleProcess = SINGLE):
        self.plan = plan or CheckpointPlan()
        self.state, self.ranks = state, ranks
        self.planned = self.plan.path is not None and self.plan.keep > 0   # the same on every rank
        self.writing = self.planned and ranks.writer
        self.warned = False
        self.pending: list[int] = []   # signals held over to the next step (data parallel: see around_step)

    # -- writing -------------------------------------------------------------------------------
    @contextmanager
    def around_step(self, round_end: int) -> Iterator[None]:
        """One training step of the loop. A signal arriving during it waits for the step to end;
        then the run is checkpointed and the signal delivered. In a data-parallel run the ranks
        first agree whether any was signalled, and all stop after the same step. Every `every`
        steps (short of the round end, which is checkpointed anyway) a checkpoint is written too."""
        with held_signals() as received:
            received += self.pending   # signals that came too late for the last step's agreement
            self.pending = []
            yield
            stop = self.ranks.any(bool(received))   # every rank stops after the same step
            if stop:
                self.save()
            elif received:   # it came during the agreement, which the other ranks ended without it: the next step's
                self.pending, received[:] = list(received), []
        if stop and not received:   # another rank was interrupted: this one stops with it
            raise KeyboardInterrupt("an interrupt to another rank")
        every = self.plan.every
        if every and self.state.step % every == 0 and self.state.step < round_end:
            self.save()

    def save(self) -> None:
        """Write a checkpoint now; the state must be between two steps. A write that fails, however
        the serializer fails (torch.save raises RuntimeError on a full disk or past a file-size
        limit, not OSError), costs the run nothing but one warning: it goes on, the previous
        checkpoint stays as it was, and no temporary file is left. Every rank calls it at the
        same points (rank 0 writes)."""
        if not self.planned:
            return
        self.state.driver.gather_round()   # mid-round: rank 0 saves every rank's share of the round
        if not self.writing:
            return
        with held_signals():   # a signal waits for the write: a checkpoint is whole or not there
            try:
                payload = self._capture()
            except UnsavableState as exc:
                log.warning("checkpoints are off for this run: %s", exc)
                self.writing = False
                return
            payload[DIGEST_KEY] = content_digest(payload)
            try:
                _keep_previous(self.plan.path, self.plan.keep)
                write_atomic(self.plan.path, lambda f: torch.save(payload, f))
            except Exception as exc:  # noqa: BLE001 - whatever the disk or the serializer raises, the run goes on
                if not self.warned:
                    kept = _previous(self.plan)
                    log.warning("could not write the checkpoint %s (%s); the run goes on: %s",
                                self.plan.path, _write_failure(exc), kept)
                    self.warned = True
                return
            self.plan.written.append(self.state.step)

    def _capture(self) -> dict:
        state, history = self.state, self.state.history
        seconds = time.perf_counter() - state.clock_start if state.clock_start is not None else history.seconds
        saved_history = {f.name: getattr(history, f.name) for f in dataclasses.fields(RunHistory)
                         if f.name not in _NOT_SAVED}
        saved_history.update(rounds=[dataclasses.asdict(r) for r in history.rounds], seconds=seconds,
                             train_losses=torch.tensor(history.train_losses, dtype=torch.float64))
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "identity": self.plan.identity, "notes": dict(self.plan.notes),
            "step": state.step,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "sampler": encode(state.sampler.state_dict(), "the sampler"),
            "probe_rng": encode(state.probe_rng.bit_generator.state, "the probe's generator"),
            "rng": _global_generators(),
            "driver": state.driver.state_dict(),
            "meter": {"flops": [[c, label, v] for (c, label), v in state.meter.flops.items()],
                      "seconds": [[c, label, v] for (c, label), v in state.meter.seconds.items()],
                      "bytes": [[c, label, v] for (c, label), v in state.meter.bytes.items()]},
            "history": encode(saved_history, "the history"),
        }

    # -- restoring -----------------------------------------------------------------------------
    def restore(self) -> bool:
        """Put the run back in the state its checkpoint saved (False: there is none to resume).
        Whatever can refuse the resume is checked before the run's record is touched, so a
        refused resume leaves the record empty (and the caller writes no results over the old)."""
        checkpoint = self.plan.resume
        if checkpoint is None:
            return False
        p, state, history = checkpoint.payload, self.state, self.state.history
        saved = decode(p["history"])
        for name in _SETUP_FIELDS:
            if _plain(saved.get(name)) != _plain(getattr(history, name)):
                raise CheckpointError(f"cannot resume from {checkpoint.path}: it was made on other "
                                      f"{name.replace('_', ' ')} than this run's")
        try:
            state.model.load_state_dict(p["model"])
            state.optimizer.load_state_dict(p["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"cannot resume from {checkpoint.path}: it does not fit this run's model "
                                  f"({_first_line(exc)})") from None
        try:   # rank 0 saved every rank's share of the round: each takes up its own
            state.driver.load_state_dict(p["driver"], rank=self.ranks.rank, world_size=self.ranks.world_size)
            state.sampler.load_state_dict(decode(p["sampler"]))
        except MixbenchError as exc:
            raise CheckpointError(f"cannot resume from {checkpoint.path}: {exc}") from None
        state.step = p["step"]
        state.probe_rng.bit_generator.state = decode(p["probe_rng"])
        meter = state.meter
        for totals, rows in ((meter.flops, p["meter"]["flops"]), (meter.seconds, p["meter"]["seconds"]),
                             (meter.bytes, p["meter"].get("bytes", []))):   # no bytes: a one-process checkpoint
            totals.clear()   # refilled in the saved order: sums over them add up in the same order
            totals.update({(c, label): v for c, label, v in rows})
        _set_global_generators(p["rng"])
        saved.update(rounds=[RoundRecord(**r) for r in saved["rounds"]], train_losses=saved["train_losses"].tolist())
        for name, value in saved.items():   # the record last: a refused resume leaves it empty
            if name not in _SETUP_FIELDS and hasattr(history, name):
                setattr(history, name, value)
        return True


def _previous(plan: CheckpointPlan) -> str:
    """What a failed write leaves to resume from, in words."""
    if plan.written:
        return f"the previous checkpoint, of step {plan.written[-1]}, stays"
    if plan.resume is not None:
        return f"the one it resumed from, of step {plan.resume.step}, stays"
    return "there is no earlier checkpoint of this run"


def _write_failure(exc: BaseException) -> str:
    """Why a write failed: the operating system's reason where one is in the chain (torch.save
    reports a full disk as an internal RuntimeError, the OSError behind it), else the exception."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return _first_line(exc)


def _keep_previous(path: Path, keep: int) -> None:
    """Shift the older checkpoints one place back (the oldest beyond `keep` drops out) and keep
    the latest as PATH.1, so the next write can replace it. The latest stays in place meanwhile:
    an interrupted shift never leaves a run without a checkpoint."""
    if keep <= 1 or not path.exists():
        return
    first = older_checkpoint(path, 1)
    if first.exists() and os.path.samefile(path, first):
        # The last write failed: the latest is kept already, and shifting again would push the
        # older ones out for nothing (and renaming a link over itself does nothing, POSIX says).
        return
    for age in range(keep - 1, 1, -1):
        if older_checkpoint(path, age - 1).exists():
            os.replace(older_checkpoint(path, age - 1), older_checkpoint(path, age))
    link = first.with_name(f".{first.name}.tmp")
    link.unlink(missing_ok=True)
    try:
        try:
            os.link(path, link)   # a second name for the same file: no copy
        except OSError:           # a file system without hard links
            shutil.copyfile(path, link)
        os.replace(link, first)
    except BaseException:
        link.unlink(missing_ok=True)   # a copy cut short by a full disk is no checkpoint
        raise


def _global_generators() -> dict:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda,
            "numpy": encode(np.random.get_state(legacy=False), "numpy's generator"),
            "python": encode(random.getstate(), "python's generator")}


def _set_global_generators(saved: dict) -> None:
    torch.set_rng_state(saved["torch"])
    if saved["cuda"] and torch.cuda.is_available() and len(saved["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(saved["cuda"])
    np.random.set_state(decode(saved["numpy"]))
    random.setstate(decode(saved["python"]))


def _plain(value):
    """Lists for tuples and one NaN for every NaN, so a record read back compares equal to the
    one the run set up."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value != value:
        return "nan"
    return value


def _show(value) -> str:
    return "none" if value is None else str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
