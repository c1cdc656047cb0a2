"""Where a run's checkpoints go, what a checkpoint must match to be resumed, and whether a run
resumes: `mixbench run --resume` must (and is refused in one line if it cannot), `mixbench
compare` does when it can (an interrupted cell goes on from its checkpoint; one it cannot use is
said why, and the cell starts over), a plain `mixbench run` starts afresh.

The checkpoint sits beside the results JSON: <out>/<task>/<algo>/<domains>/seed<n>.ckpt, the
older ones kept (--keep-checkpoints) as seed<n>.ckpt.1, .2, ...
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mixbench.errors import MixbenchError
from mixbench.regroup import DomainSpec
from mixbench.storage.atomic import json_safe
from mixbench.task import TaskData

if TYPE_CHECKING:   # the engine's checkpoints need torch: imported when a run starts, not for bad input
    from mixbench.engine.checkpoint import CheckpointPlan

# How a run treats the checkpoint it finds at its path.
NEVER = "never"            # start afresh (its checkpoints replace the one there)
REQUIRED = "required"      # continue from it, or refuse in one line
WHEN_POSSIBLE = "when_possible"   # continue from it if it fits, else say why and start afresh


def checkpoint_path(results: Path) -> Path:
    """seed<n>.json → seed<n>.ckpt, beside it."""
    return Path(results).with_suffix(".ckpt")


def run_identity(*, task_name: str, task_version: str, algo: str, params: dict, config: dict, domains: DomainSpec,
                 embedder_name: str | None, world_size: int = 1) -> dict:
    """What a run is, as its checkpoint records it: a resume must match every entry. The world
    size too: a data-parallel checkpoint holds rank 0's share of the round's state (its meter,
    the pooled tap sums), which only the same number of processes can take up."""
    return _as_stored({
        "task": task_name, "task version": task_version, "strategy": algo,
        "hyperparameters": params, "config": config,
        "domains": domains.method if domains.method == "original"
        else f"regroup k={_ks(domains.ks)} by {domains.choice.label}",
        "embedder": embedder_name if domains.method == "regroup" else None,
        "world size": world_size,
    })


def checkpoint_plan(results: Path, identity: dict, *, resume: str, every: int | None, keep: int) -> CheckpointPlan:
    """The plan of a run whose results go to `results`; the checkpoint it resumes from, if any,
    is read and checked against `identity` here, before anything is written."""
    from mixbench.engine.checkpoint import CheckpointError, CheckpointPlan, load_checkpoint

    path = checkpoint_path(results)
    plan = CheckpointPlan(path=path, every=every, keep=keep, identity=identity)
    if resume == REQUIRED:
        try:
            checkpoint = load_checkpoint(path)
        except CheckpointError as exc:
            raise MixbenchError(f"cannot resume: {exc} (run without --resume to start over)") from None
        changed = checkpoint.differences(identity)
        if changed:
            raise MixbenchError(f"cannot resume from {path}: it was made with other settings: {'; '.join(changed)}")
        return dataclasses.replace(plan, resume=checkpoint)
    if not path.exists():
        return plan
    if resume == NEVER:
        click.echo(f"starting afresh: {path} will be replaced (--resume continues from it)", err=True)
        return plan
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as exc:
        click.echo(f"  not resuming: {exc}; starting over", err=True)
        return plan
    changed = checkpoint.differences(identity)
    if changed:
        click.echo(f"  not resuming from {path}: it was made with other settings ({'; '.join(changed)}); "
                   f"starting over", err=True)
        return plan
    return dataclasses.replace(plan, resume=checkpoint)


def check_domains(plan: CheckpointPlan, data: TaskData, resume: str) -> CheckpointPlan:
    """The checkpoint must have trained on the domains this run has, the same examples in each
    (regrouped ones are made again from the cache: the same, unless the cache or the task
    changed). The plan's checkpoints record which, for the next resume."""
    fingerprint = domains_fingerprint(data)
    plan.notes["domains fingerprint"] = fingerprint
    checkpoint, domains = plan.resume, data.domains
    if checkpoint is None:
        return plan
    if checkpoint.domains != list(domains):
        why = (f"{checkpoint.path} was made on other domains ({len(checkpoint.domains)}: "
               f"{_names(checkpoint.domains)}; this run has {len(domains)}: {_names(domains)})")
    elif checkpoint.notes.get("domains fingerprint") != fingerprint:
        why = f"{checkpoint.path} was made on domains of the same names holding other examples"
    else:
        return plan
    if resume == REQUIRED:
        raise MixbenchError(f"cannot resume: {why}")
    click.echo(f"  not resuming: {why}; starting over", err=True)
    return dataclasses.replace(plan, resume=None)


def what_was_kept(plan: CheckpointPlan, mlflow_run=None) -> str:
    """What is left of a run whose results file could not be written, in words: its latest
    checkpoint (and how to go on from it), its MLflow run."""
    kept = []
    if plan.written:
        kept.append(f"its checkpoint {plan.path} of step {plan.written[-1]} (--resume continues from it)")
    elif plan.resume is not None and plan.path is not None and plan.path.exists():
        kept.append(f"the checkpoint {plan.path} it resumed from, of step {plan.resume.step} (--resume continues "
                    f"from it)")
    if mlflow_run is not None:
        kept.append(f"its MLflow run {mlflow_run.run_id} (parameters and metrics; marked FAILED)")
    return "kept: " + " and ".join(kept) if kept else "nothing of this run was kept"


def domains_fingerprint(data: TaskData) -> str:
    """A short hash of which domain every train and eval example is in."""
    labels = "\n".join(e.domain for e in data.train) + "\n--\n" + "\n".join(e.domain for e in data.eval)
    return hashlib.sha256(labels.encode("utf-8")).hexdigest()[:16]


def _ks(ks: tuple[int, ...]) -> str:
    return ",".join(map(str, ks)) if len(ks) <= 3 else f"{ks[0]}..{ks[-1]} ({len(ks)} values)"


def _names(names) -> str:
    names = list(names)
    return ", ".join(names) if len(names) <= 4 else f"{', '.join(names[:3])}, ... {names[-1]}"


def _as_stored(values: dict) -> dict:
    """Plain JSON values (tuples as lists, numpy as Python, NaN as None): compared as stored."""
    return json.loads(json.dumps(json_safe(values)))
