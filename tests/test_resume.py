"""A run killed part-way and resumed from its checkpoint ends exactly as the uninterrupted run of
the same seed: every round's mixture and eval losses, every step's loss, the final metrics and
the FLOPs metered, bit for bit on a CPU (only the seconds differ).

Most tests kill the run in-process (a callback raises at a chosen step, as SIGKILL would stop it:
nothing saved); one kills a real `mixbench run` with SIGKILL and resumes it with `--resume`, and
one does the same to a `mixbench compare`."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time

import pytest
import torch
from mixbench.tasks.synthetic import Synthetic

from mixbench import registry
from mixbench.engine.callbacks import TrainCallback
from mixbench.engine.checkpoint import CheckpointPlan, load_checkpoint, older_checkpoint
from mixbench.engine.trainer import train
from tests.conftest import default_signals, mixbench_command

TINY = {"steps": 30, "steps_per_round": 10, "batch_size": 4, "seq_len": 32, "n_layer": 1, "n_embd": 32,
        "device": "cpu"}
# Long enough (a second or so) that the test sees a checkpoint past step 50 before the run ends.
TINY_CLI = ["--task", "synthetic", "--steps", "120", "--steps-per-round", "40", "--batch-size", "4", "--seq-len",
            "32", "--n-layer", "1", "--n-embd", "32", "--device", "cpu", "--no-mlflow", "--no-progress"]


class Killed(BaseException):
    """What SIGKILL does to a run: it stops where it is, nothing saved."""


class KillAt(TrainCallback):
    def __init__(self, step: int, how=None):
        self.step, self.how = step, how

    def on_step(self, result) -> None:
        if result.step == self.step:
            if self.how is None:
                raise Killed
            self.how()


@pytest.fixture(scope="module")
def task():
    return Synthetic()


@pytest.fixture(scope="module")
def data(task):
    return task.load()


def comparable(history) -> str:
    """Everything a run records but its timings, as text (NaN equal to NaN)."""
    rounds = [{k: v for k, v in dataclasses.asdict(r).items() if k != "seconds"} for r in history.rounds]
    return json.dumps({
        "rounds": rounds, "train_losses": history.train_losses, "final_mixture": history.final_mixture,
        "initial": [history.initial_eval_losses, history.initial_mean_eval_loss, history.initial_reference_eval_loss],
        "tokens": history.tokens_trained, "flops": sorted(history.meter.report().flops_by_label.items()),
    })


def killed_then_resumed(data, algo, cfg, path, kill_at, every=None, how=None):
    """Train until `kill_at`, then resume from the latest checkpoint; the resumed history and
    the checkpoint it resumed from."""
    plan = CheckpointPlan(path=path, every=every, identity={"algo": algo})
    with pytest.raises((Killed, KeyboardInterrupt)):
        train(data, registry.strategies.create(algo), cfg, checkpoints=plan, progress=False,
              callbacks=[KillAt(kill_at, how)])
    checkpoint = load_checkpoint(path)
    resumed = train(data, registry.strategies.create(algo), cfg, progress=False,
                    checkpoints=dataclasses.replace(plan, resume=checkpoint))
    return resumed, checkpoint


@pytest.mark.parametrize("algo", ["rnb", "skillit", "aioli", "dga", "doremi", "doge", "stratified"])
def test_a_run_killed_mid_round_resumes_to_the_uninterrupted_result(tmp_path, task, data, algo):
    cfg = task.budget.override(**TINY)
    uninterrupted = train(data, registry.strategies.create(algo), cfg, progress=False)
    resumed, checkpoint = killed_then_resumed(data, algo, cfg, tmp_path / "run.ckpt", kill_at=18, every=4)
    assert checkpoint.step == 16 and checkpoint.rounds_done == 1   # resumed mid-round 2, not from the start
    assert comparable(resumed) == comparable(uninterrupted)


@pytest.mark.parametrize("algo", ["rnb", "aioli"])
def test_a_run_killed_after_a_round_end_resumes_from_that_round(tmp_path, task, data, algo):
    cfg = task.budget.override(**TINY)
    uninterrupted = train(data, registry.strategies.create(algo), cfg, progress=False)
    resumed, checkpoint = killed_then_resumed(data, algo, cfg, tmp_path / "run.ckpt", kill_at=27)
    assert checkpoint.rounds_done == 2 and checkpoint.step >= 20   # aioli's update trains a few probe steps
    assert comparable(resumed) == comparable(uninterrupted)


@pytest.fixture
def sigterm_interrupts():
    """SIGTERM raises KeyboardInterrupt, as the command line sets it up."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_a_signal_during_a_step_waits_for_it_and_checkpoints_it(tmp_path, task, data, sigterm_interrupts):
    """SIGTERM mid-step: the step ends, a checkpoint of exactly that step is written, then the
    KeyboardInterrupt; resuming from it ends as the uninterrupted run."""
    cfg = task.budget.override(**TINY)
    uninterrupted = train(data, registry.strategies.create("rnb"), cfg, progress=False)
    resumed, checkpoint = killed_then_resumed(data, "rnb", cfg, tmp_path / "run.ckpt", kill_at=13,
                                              how=lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert checkpoint.step == 13
    assert comparable(resumed) == comparable(uninterrupted)


def test_a_checkpoint_loads_with_weights_only_and_the_last_n_are_kept(tmp_path, task, data):
    cfg = task.budget.override(**TINY)
    path = tmp_path / "run.ckpt"
    train(data, registry.strategies.create("rnb"), cfg, progress=False,
          checkpoints=CheckpointPlan(path=path, every=5, keep=3))
    payload = torch.load(path, weights_only=True)   # tensors and plain data only: no pickled code runs
    assert payload["step"] == 30 and len(payload["history"]["rounds"]) == 3
    steps = [torch.load(p, weights_only=True)["step"] for p in (older_checkpoint(path, 1), older_checkpoint(path, 2))]
    assert steps == [25, 20] and not older_checkpoint(path, 3).exists()


def test_no_checkpoint_is_written_with_keep_zero(tmp_path, task, data):
    train(data, registry.strategies.create("stratified"), task.budget.override(**TINY), progress=False,
          checkpoints=CheckpointPlan(path=tmp_path / "run.ckpt", every=1, keep=0))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- real processes, real SIGKILL


def env_for(tmp_path) -> dict:
    return dict(os.environ, MIXBENCH_CACHE=str(tmp_path / "cache"))


def cli(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(mixbench_command() + list(args), cwd=tmp_path, env=env_for(tmp_path), capture_output=True,
                          text=True, timeout=600)


def kill_when_checkpointed(tmp_path, path, args, min_step: int) -> int:
    """Start `mixbench ARGS`, SIGKILL it once its checkpoint at `path` has reached `min_step`;
    the step of the checkpoint it left."""
    proc = subprocess.Popen(mixbench_command() + list(args), cwd=tmp_path, env=env_for(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            assert proc.poll() is None, f"the run ended before it could be killed:\n{proc.communicate()[1]}"
            try:
                if path.exists() and torch.load(path, weights_only=True)["step"] >= min_step:
                    break
            except (OSError, RuntimeError, EOFError):   # replaced while read: read the next one
                pass
            time.sleep(0.05)
        else:
            raise AssertionError("the run never checkpointed")
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    return load_checkpoint(path).step


def results_without_timings(path) -> dict:
    result = json.loads(path.read_text())
    for key in ("started_at", "finished_at", "environment"):
        result.pop(key)
    result["metrics"].pop("train_seconds")
    result["metrics"].pop("stage_seconds")   # wall seconds per stage, like train_seconds
    for record in result["rounds"]:
        record.pop("seconds")
    for key in ("train_seconds", "overhead_seconds", "seconds_pct", "seconds_by_label"):
        result["overhead"].pop(key)
    return result


@pytest.mark.slow
def test_a_sigkilled_run_resumes_with_resume_to_the_uninterrupted_results(tmp_path):
    args = ["run", "--algo", "rnb", "--domains", "original", *TINY_CLI, "--checkpoint-every", "1"]
    reference = cli(tmp_path, *args, "--out", "reference")
    assert reference.returncode == 0, reference.stderr
    checkpoint = tmp_path / "out/synthetic/rnb/original/seed0.ckpt"
    step = kill_when_checkpointed(tmp_path, checkpoint, [*args, "--out", "out"], min_step=50)
    assert 50 <= step < 120
    resumed = cli(tmp_path, *args, "--out", "out", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {checkpoint.relative_to(tmp_path)} at step {step}" in resumed.stderr
    assert results_without_timings(tmp_path / "out/synthetic/rnb/original/seed0.json") == \
        results_without_timings(tmp_path / "reference/synthetic/rnb/original/seed0.json")


@pytest.mark.slow
def test_a_killed_compare_resumes_its_cell_from_the_checkpoint(tmp_path):
    args = ["compare", "--algos", "stratified,aioli", "--seeds", "0", "--domains", "original", *TINY_CLI,
            "--checkpoint-every", "1"]
    reference = cli(tmp_path, *args, "--out", "reference")
    assert reference.returncode == 0, reference.stderr
    checkpoint = tmp_path / "out/synthetic/aioli/original/seed0.ckpt"
    step = kill_when_checkpointed(tmp_path, checkpoint, [*args, "--out", "out"], min_step=50)
    assert 50 <= step < 120
    resumed = cli(tmp_path, *args, "--out", "out")
    assert resumed.returncode == 0, resumed.stderr
    assert "1 already finished, 1 to run" in resumed.stderr
    assert f"resuming from {checkpoint.relative_to(tmp_path)} at step {step}" in resumed.stderr
    for algo in ("stratified", "aioli"):
        cell = f"synthetic/{algo}/original/seed0.json"
        assert results_without_timings(tmp_path / "out" / cell) == \
            results_without_timings(tmp_path / "reference" / cell)
