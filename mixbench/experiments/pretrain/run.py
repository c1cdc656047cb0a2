"""`mixbench pretrain`: the recipe's run through the one trainer, then the base written from it.

Pretraining is `train()` on the corpus as a one-domain task with the stratified strategy: the
trainer's checkpoints make it resumable (an interrupted or shortened run goes on from
OUT/pretrain.ckpt), its seeded sampler and CPU device make it deterministic, its bar shows the
progress. `steps` stops the recipe's run after that many steps (its schedule stays the
recipe's), as Ctrl-C would: checkpointed, to be continued by the next call.
"""

from __future__ import annotations

import json
import platform
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mixbench.engine.callbacks import TrainCallback
from mixbench.errors import MixbenchError
from mixbench.experiments.pretrain import corpus_slice, recipe, sources
from mixbench.experiments.pretrain.corpus import EVAL_EVERY, build
from mixbench.storage.atomic import json_safe

CHECKPOINT = "pretrain.ckpt"
PROGRESS = "pretrain.json"
TASK = "pretrain-corpus"


@dataclass
class Outcome:
    step: int
    finished: bool
    train_losses: list[float]
    out_dir: Path


class _StopAfter(TrainCallback):
    """Stops the run after step `step` the way Ctrl-C does: the trainer checkpoints, then stops."""

    def __init__(self, step: int):
        self.step, self.fired = step, False

    def on_step(self, result) -> None:
        if result.step == self.step and not self.fired:
            self.fired = True
            signal.raise_signal(signal.SIGINT)


class _RowsOfFirstSteps(TrainCallback):
    """The training windows the first `steps` steps draw: the shipped slice of the corpus."""

    def __init__(self, steps: int):
        self.steps, self.rows = steps, []

    def on_step(self, result) -> None:
        if result.step <= self.steps:
            self.rows.extend(int(r) for r in result.rows)


def pretrain(out_dir: Path, *, steps: int | None = None, progress: bool = True) -> Outcome:
    """Run (or go on with) the recipe up to `steps` (None: to its end); at the end write the base,
    its recipe record and the corpus slice to `out_dir`."""
    from mixbench import registry
    from mixbench.engine.evaluation import select_eval_subset
    from mixbench.engine.history import RunHistory
    from mixbench.engine.trainer import train
    from mixbench.experiments.checkpoints import WHEN_POSSIBLE, check_domains, checkpoint_plan, run_identity
    from mixbench.regroup import DomainSpec

    cfg = recipe.CONFIG
    if steps is not None and not 1 <= steps <= cfg.steps:
        raise MixbenchError(f"--steps must be from 1 to the recipe's {cfg.steps}, got {steps}")
    shipped = _shipped_recipe()
    data, corpus = _corpus(steps, shipped)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus_hash = corpus.sha256["train"] if corpus is not None else shipped["corpus"]["sha256"]["train"]
    identity = run_identity(task_name=TASK, task_version=corpus_hash, algo="stratified", params={},
                            config=cfg.identity(), domains=DomainSpec("original"), embedder_name=None)
    plan = checkpoint_plan(out_dir / PROGRESS, identity, resume=WHEN_POSSIBLE, every=None, keep=1)
    plan = check_domains(plan, data, WHEN_POSSIBLE)
    done = plan.resume.step if plan.resume is not None else 0
    target = steps or cfg.steps
    # A finished run whose base.pt is missing (it stopped between its last checkpoint and the base)
    # goes through train() once more: it resumes at the end, trains nothing and returns the history.
    if done >= target and (target < cfg.steps or (out_dir / "base.pt").is_file()):
        losses = [float(x) for x in plan.resume.payload["history"]["train_losses"]] if plan.resume else []
        return Outcome(done, done >= cfg.steps and (out_dir / "base.pt").is_file(), losses, out_dir)

    _announce(out_dir, done, target, len(data.train), shipped)
    history = RunHistory()
    stop = _StopAfter(target) if target < cfg.steps else None
    rows = _RowsOfFirstSteps(recipe.SLICE_STEPS) if corpus is not None and done == 0 else None
    callbacks = [c for c in (rows, stop) if c is not None]
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.THREADS)
    try:
        train(data, registry.strategies.create("stratified"), cfg, history=history, progress=progress,
              checkpoints=plan, callbacks=callbacks)
    except KeyboardInterrupt:
        _write_progress(out_dir, history)
        if stop is None or not stop.fired:
            import click

            click.echo(f"interrupted after step {len(history.train_losses)}; {plan.path} keeps the run: the same "
                       "command goes on from there", err=True)
            raise
        return Outcome(len(history.train_losses), False, list(history.train_losses), out_dir)
    finally:
        torch.set_num_threads(threads)
        if rows is not None and len(rows.rows) >= recipe.SLICE_STEPS * cfg.batch_size:
            eval_rows = select_eval_subset(np.zeros(len(corpus.eval), dtype=np.int64), cfg.eval_per_domain)
            corpus_slice.write(out_dir / recipe.SLICE_FILE.name, steps=recipe.SLICE_STEPS, train=corpus.train,
                               evaluation=corpus.eval, train_rows=rows.rows, eval_rows=eval_rows,
                               corpus_sha256=corpus.sha256)
    _write_progress(out_dir, history)
    _write_base(out_dir, plan, history, corpus, time.perf_counter() - started)
    return Outcome(len(history.train_losses), True, list(history.train_losses), out_dir)


def _announce(out_dir: Path, done: int, target: int, rows: int | None, shipped: dict | None) -> None:
    """One line before the work: what it trains, how long it should take (at the shipped base's
    measured seconds per step, where that was built), where it checkpoints."""
    import click

    from mixbench.regroup.stages import about

    cfg = recipe.CONFIG
    rate = shipped["seconds_total"] / cfg.steps if shipped and shipped.get("seconds_total") else None
    estimate = f"; {about((target - done) * rate)} at the shipped base's {rate:.1f} s/step" if rate else ""
    start = f"from step {done} " if done else ""
    corpus = f" of {rows:,} corpus rows" if rows else ""
    click.echo(f"pretraining the base {start}to step {target} ({cfg.batch_size} × {cfg.seq_len} bytes per step"
               f"{corpus}){estimate}; checkpoint in {out_dir}", err=True)


def _shipped_recipe() -> dict | None:
    if not recipe.RECIPE_FILE.is_file():
        return None
    return json.loads(recipe.RECIPE_FILE.read_text())


def _corpus(steps: int | None, shipped: dict | None):
    """(TaskData, Corpus or None): the full corpus where its packages are installed, else the
    shipped slice for a run of at most its steps."""
    try:
        corpus = build(recipe.CONFIG.seq_len + 1)
    except MixbenchError as missing:
        if steps is None or steps > recipe.SLICE_STEPS or not recipe.SLICE_FILE.is_file() or shipped is None:
            raise MixbenchError(f"{missing} (without them, only the shipped slice's first {recipe.SLICE_STEPS} "
                                f"steps can be replayed: --steps N with N at most {recipe.SLICE_STEPS})") from None
        return corpus_slice.task_data(corpus_slice.read(recipe.SLICE_FILE)), None
    if shipped is not None and shipped["corpus"]["sha256"] != corpus.sha256:
        import click

        click.echo("warning: the installed packages give another corpus than the shipped base's (other package "
                   "versions?): this run will not reproduce it", err=True)
    return corpus.task_data(), corpus


def _write_progress(out_dir: Path, history) -> None:
    record = {"step": len(history.train_losses), "train_losses": list(history.train_losses),
              "initial_eval_loss": history.initial_mean_eval_loss,
              "eval_losses": [[r.step, r.mean_eval_loss] for r in history.rounds if r.evaluated]}
    (out_dir / PROGRESS).write_text(json.dumps(json_safe(record), indent=1))


def _write_base(out_dir: Path, plan, history, corpus, seconds: float) -> None:
    """base.pt from the run's last checkpoint (the trained model), and recipe.json beside it."""
    from mixbench.engine.checkpoint import load_checkpoint
    from mixbench.models.base_gpt import save_base
    from mixbench.models.gpt import GPT, GPTConfig

    cfg = recipe.CONFIG
    checkpoint = load_checkpoint(plan.path)
    model = GPT(GPTConfig(vocab_size=257, seq_len=cfg.seq_len, n_layer=cfg.n_layer, n_head=cfg.n_head,
                          n_embd=cfg.n_embd))
    model.load_state_dict(checkpoint.payload["model"])
    weights = save_base(model, out_dir / "base.pt")
    evaluated = [r for r in history.rounds if r.evaluated]
    record = {
        "config": cfg.to_dict(),
        "strategy": "stratified (one domain)",
        "first_steps": {"steps": recipe.SLICE_STEPS, "train_losses": list(history.train_losses[:recipe.SLICE_STEPS])},
        "train_losses_every_25": list(history.train_losses[::25]),
        "initial_eval_loss": history.initial_mean_eval_loss,
        "eval_losses": [[r.step, r.mean_eval_loss] for r in evaluated],
        "final_eval_loss": evaluated[-1].mean_eval_loss if evaluated else None,
        "weights_sha256": weights,
        "seconds_this_call": seconds, "seconds_total": history.seconds,
        "corpus": None if corpus is None else {
            "sources": {p: {"licence": lic, "version": v} for (p, lic), v in
                        zip(sources.PACKAGES.items(), sources.package_versions().values())},
            "documents": corpus.documents, "held_out": f"every {EVAL_EVERY}th document",
            "train_windows": len(corpus.train), "eval_windows": len(corpus.eval), "train_bytes": corpus.bytes,
            "sha256": corpus.sha256, "files": corpus.files},
        "machine": {"torch": torch.__version__, "threads": recipe.THREADS, "python": platform.python_version(),
                    "processor": platform.machine()},
    }
    (out_dir / "recipe.json").write_text(json.dumps(json_safe(record), indent=1))
