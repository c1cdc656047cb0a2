"""Data parallel on torch.distributed (gloo, CPU): two processes train the model one process
would, on the same global batches.

In-process tests start two real ranks with torch.multiprocessing (init_process_group on a free
local port) and compare them with one process: the tap's all-reduced per-domain sums (1e-5),
every step's loss, the final mixture and eval loss. The command-line tests go through the
user's path, `mixbench run --nproc 2` (torch.distributed.run): the same results as `mixbench
run`, resume, and the refusals (another world size, bad --nproc) in one line."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mixbench.algorithms.rnb import RnB
from mixbench.tasks.synthetic import Synthetic

from mixbench import registry
from mixbench.engine.callbacks import TrainCallback
from mixbench.engine.checkpoint import CheckpointPlan, load_checkpoint
from mixbench.engine.distributed import DataParallel
from mixbench.engine.trainer import train

TINY = {"steps": 30, "steps_per_round": 10, "batch_size": 4, "seq_len": 32, "n_layer": 1, "n_embd": 32,
        "device": "cpu"}
TINY_CLI = ["--task", "synthetic", "--domains", "original", "--steps", "20", "--steps-per-round", "10",
            "--batch-size", "4", "--seq-len", "32", "--n-layer", "1", "--n-embd", "32", "--device", "cpu",
            "--no-mlflow", "--no-progress"]
RESULTS = Path("synthetic/rnb/original/seed0.json")


class RecordingRnB(RnB):
    """rnb, keeping every round's per-domain gradient sums and counts as the update got them."""

    def update(self, feedback, probe):
        self.__dict__.setdefault("seen", []).append(
            (feedback.domain_gradients.sums.copy(), feedback.domain_gradients.counts.copy()))
        return super().update(feedback, probe)


class StopAt(TrainCallback):
    """Ends the run at a step, nothing saved (as SIGKILL would)."""

    def __init__(self, step: int):
        self.step = step

    def on_step(self, result) -> None:
        if result.step == self.step:
            raise SystemExit(f"stopped at step {result.step}")


def record(history, strategy) -> dict:
    return {"train_losses": list(history.train_losses), "final_mixture": list(history.final_mixture),
            "final_eval_loss": history.final_mean_eval_loss, "mixtures": [r.mixture for r in history.rounds],
            "eval_losses": [r.eval_losses for r in history.rounds], "seen": getattr(strategy, "seen", []),
            "world_size": history.world_size, "bytes": dict(history.meter.bytes)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world_size: int, port: int, out: str, stop_at: int | None, resume: bool, algo: str,
          every: int | None) -> None:
    """One rank: train the tiny run (checkpointed every `every` steps); rank 0 saves what it recorded."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    ranks = DataParallel(rank, world_size, local_rank=rank)
    try:
        data, cfg = Synthetic().load(), Synthetic().budget.override(**TINY)
        plan = CheckpointPlan(path=Path(out) / "run.ckpt", every=every)
        if resume:
            plan = dataclasses.replace(plan, resume=load_checkpoint(plan.path))
        strategy = RecordingRnB() if algo == "rnb" else registry.strategies.create(algo)
        try:
            history = train(data, strategy, cfg, progress=False, checkpoints=plan,
                            callbacks=[StopAt(stop_at)] if stop_at else [],
                            ranks=ranks)
        except SystemExit:
            return
        if rank == 0:
            torch.save(record(history, strategy), Path(out) / "record.pt")
    finally:
        ranks.leave()   # what `mixbench run` does: collect the DDP module, then leave the group


def two_ranks(out: Path, stop_at: int | None = None, resume: bool = False, algo: str = "rnb",
              every: int | None = 5) -> dict | None:
    mp.spawn(_rank, args=(2, _free_port(), str(out), stop_at, resume, algo, every), nprocs=2, join=True)
    path = out / "record.pt"
    return torch.load(path, weights_only=False) if path.exists() else None


@pytest.fixture(scope="module")
def one_process() -> dict:
    strategy = RecordingRnB()
    history = train(Synthetic().load(), strategy, Synthetic().budget.override(**TINY), progress=False)
    return record(history, strategy)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> dict:
    return two_ranks(tmp_path_factory.mktemp("dp"))


def assert_close(a, b, rtol: float) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    scale = max(np.abs(a).max(), 1e-12)
    assert np.abs(a - b).max() <= rtol * scale, f"max difference {np.abs(a - b).max():.3g} at scale {scale:.3g}"


# ---------------------------------------------------------------- two ranks = one process


def test_the_all_reduced_tap_sums_are_the_one_process_sums(one_process, two_processes):
    assert len(two_processes["seen"]) == len(one_process["seen"]) == 2   # an update after rounds 1 and 2
    for (sums1, counts1), (sums2, counts2) in zip(one_process["seen"], two_processes["seen"]):
        np.testing.assert_array_equal(counts2, counts1)                 # the same global batches
        assert_close(sums2, sums1, rtol=1e-5)


def test_two_ranks_train_the_one_process_model(one_process, two_processes):
    assert_close(two_processes["train_losses"], one_process["train_losses"], rtol=1e-5)   # global batch means
    for p1, p2 in zip(one_process["mixtures"], two_processes["mixtures"]):
        assert_close(p2, p1, rtol=1e-5)
    assert_close(two_processes["final_mixture"], one_process["final_mixture"], rtol=1e-5)
    assert two_processes["final_eval_loss"] == pytest.approx(one_process["final_eval_loss"], rel=1e-5)
    assert two_processes["world_size"] == 2 and one_process["world_size"] == 1


def test_the_meter_counts_the_communication(one_process, two_processes):
    sent = two_processes["bytes"]
    per_reduce = 4 * (257 * 32) * 4 + 4 * 8   # synthetic's 4 domains × the tiny head (V × h) in float32; int64 counts
    # An all-reduce at the 2 round ends with an update.
    assert sent[("tap", "allreduce")] == 2 * per_reduce
    assert sent[("comm", "step_losses")] == 30 * 2 * (2 * 2 * 8)   # steps × ranks × (loss, weight) of 2 rows
    # The round's counts (int64) and train-loss sums and weights (float64) per domain: summed at
    # the 3 round ends.
    round_counts = 4 * 8 + 2 * 4 * 8
    assert sent[("comm", "round_counts")] == 3 * round_counts
    # The checkpoints every 5 steps copy rank 1's share of the round to rank 0 mid-round, at steps
    # 5, 15 and 25: checkpointing, not the tap's overhead.
    assert sent[("comm", "checkpoint")] == 3 * (per_reduce + round_counts)
    assert sent[("comm", "gradients")] > 0
    assert one_process["bytes"] == {}   # one process sends nothing


def test_a_data_parallel_run_stopped_mid_round_resumes_to_the_uninterrupted_result(tmp_path, two_processes):
    """Stopped at step 18: the last checkpoint is step 15, mid-round, holding each rank's share of
    the round's tap sums as it was; resumed by two ranks, each takes up its own share, and the run
    ends exactly as the uninterrupted two-rank run, with checkpoints mid-round or without any
    (writing one changes nothing: before, a checkpoint pooled the shares on rank 0, and a resumed
    run's next mixture differed from an uninterrupted one's by about 3e-8)."""
    assert two_ranks(tmp_path, stop_at=18) is None
    checkpoint = load_checkpoint(tmp_path / "run.ckpt")
    assert checkpoint.step == 15 and checkpoint.rounds_done == 1
    resumed = two_ranks(tmp_path, resume=True)
    never_checkpointed = two_ranks(tmp_path / "plain", every=None)
    for key in ("train_losses", "mixtures", "eval_losses", "final_mixture", "final_eval_loss"):
        assert resumed[key] == two_processes[key] == never_checkpointed[key], key


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["aioli", "dga", "doremi"])
def test_probing_strategies_choose_the_one_process_mixtures(tmp_path, algo):
    """Probes are collective: Aioli's probe steps train data-parallel, DGA's probe gradients and
    DoReMi's scratch proxy (a branch, weighted steps, a frozen reference) run whole on each rank;
    every rank's strategy gets the same inputs, and the mixtures are the one-process ones."""
    data, cfg = Synthetic().load(), Synthetic().budget.override(**TINY)
    one = train(data, registry.strategies.create(algo), cfg, progress=False)
    two = two_ranks(tmp_path, algo=algo)
    for p1, p2 in zip([r.mixture for r in one.rounds] + [one.final_mixture], two["mixtures"] + [two["final_mixture"]]):
        assert_close(p2, p1, rtol=1e-5)
    assert two["final_eval_loss"] == pytest.approx(one.final_mean_eval_loss, rel=1e-5)


LEAVE_AFTER_DDP = """
import os, sys
import torch, torch.distributed as dist
from mixbench.engine.distributed import DataParallel, leave_process_group
def train():   # a training function: its DDP model is garbage once it returns
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d", rank=0, world_size=1)
    model = DataParallel(0, 1, local_rank=0).wrap(torch.nn.Linear(4, 4))  # imports torch.distributed.nn now
    model(torch.ones(2, 4)).sum().backward()
train()
if sys.argv[1] == "mixbench":
    leave_process_group()
else:
    dist.destroy_process_group()
print(sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process's threads from /proc")
@pytest.mark.parametrize("leave", ["mixbench", "torch"])
def test_leaving_frees_the_group_so_no_gloo_thread_outlives_the_interpreter(leave):
    """The cause of a rank's rare SIGABRT at exit ("terminate called without an active
    exception"): DDP's constructor imports torch.distributed.nn, whose collectives then hold the
    default group as a default argument, so destroy_process_group alone leaves gloo's threads
    running into interpreter shutdown ("torch": kept as the control; if a torch release frees
    the group itself, it fails and the release in leave_process_group can go). The process's
    own threads are read from /proc: gloo's workers are named pt_gloo_runloop."""
    proc = subprocess.run([sys.executable, "-c", LEAVE_AFTER_DDP % _free_port(), leave],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr
    threads = proc.stdout.strip().splitlines()[-1]
    assert ("pt_gloo_runloop" in threads) == (leave == "torch"), threads


# ---------------------------------------------------------------- the command line: mixbench run --nproc 2


def results(path: Path) -> dict:
    return json.loads(path.read_text())


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_error_line(proc, *expected: str) -> None:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for text in expected:
        assert text in errors[0], errors[0]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """`mixbench run` and `mixbench run --nproc 2` of the same tiny rnb run, each in its own folder."""
    from tests.conftest import mixbench_command

    base = tmp_path_factory.mktemp("cli")
    procs = {}
    for name, extra in (("one", []), ("two", ["--nproc", "2"])):
        env = dict(os.environ, MIXBENCH_CACHE=str(base / "cache"), OMP_NUM_THREADS="1")
        procs[name] = __import__("subprocess").run(
            mixbench_command() + ["run", "--algo", "rnb", *TINY_CLI, "--out", str(base / name), *extra],
            cwd=base, env=env, capture_output=True, text=True, timeout=600)
    return base, procs


@pytest.mark.slow
def test_mixbench_run_nproc_2_gives_the_one_process_results(cli_runs):
    base, procs = cli_runs
    for proc in procs.values():
        assert proc.returncode == 0, proc.stderr
    one, two = results(base / "one" / RESULTS), results(base / "two" / RESULTS)
    assert two["environment"]["world_size"] == 2 and one["environment"]["world_size"] == 1
    assert_close(two["train_losses"], one["train_losses"], rtol=1e-5)
    assert_close(two["mixture"]["final"], one["mixture"]["final"], rtol=1e-5)
    assert two["metrics"]["final_mean_eval_loss"] == pytest.approx(one["metrics"]["final_mean_eval_loss"], rel=1e-5)
    # Rank 0 alone reports: one summary, and the traffic in it.
    assert procs["two"].stdout.count("results: ") == 1
    assert "tap all-reduce (per-domain sums and counts)" in procs["two"].stdout
    assert two["overhead"]["bytes_by_label"]["tap/allreduce"] > 0 and not one["overhead"]["bytes_by_label"]


@pytest.mark.slow
def test_a_checkpoint_of_another_world_size_is_refused_in_one_line(cli_runs, run_cli, tmp_path):
    base, _ = cli_runs
    for made_by, resumed_with, expected in (("two", [], "world size (2 in the checkpoint, 1 now)"),
                                            ("one", ["--nproc", "2"], "world size (1 in the checkpoint, 2 now)")):
        out = tmp_path / made_by
        shutil.copytree(base / made_by, out)
        before = snapshot(out)
        proc = run_cli("run", "--algo", "rnb", *TINY_CLI, "--out", str(out), "--resume", *resumed_with)
        assert_one_error_line(proc, "cannot resume from", expected)
        assert snapshot(out) == before


@pytest.mark.slow
def test_mixbench_run_nproc_2_resumes_its_own_checkpoint(cli_runs, run_cli, tmp_path):
    """A finished two-process run resumed by two processes: nothing left to train, the same results."""
    base, _ = cli_runs
    out = tmp_path / "two"
    shutil.copytree(base / "two", out)
    proc = run_cli("run", "--algo", "rnb", *TINY_CLI, "--out", str(out), "--resume", "--nproc", "2")
    assert proc.returncode == 0, proc.stderr
    assert "resuming from" in proc.stderr
    assert results(out / RESULTS)["train_losses"] == results(base / "two" / RESULTS)["train_losses"]


@pytest.mark.parametrize("nproc", ["0", "-1"])
def test_a_bad_nproc_is_one_line_and_touches_nothing(run_cli, tmp_path, nproc):
    out = tmp_path / "out"
    (out / RESULTS).parent.mkdir(parents=True)
    (out / RESULTS).write_text('{"a result": "already there"}')
    (out / RESULTS).with_suffix(".ckpt").write_bytes(b"a checkpoint already there")
    before = snapshot(out)
    proc = run_cli("run", "--algo", "rnb", *TINY_CLI, "--out", str(out), "--nproc", nproc)
    assert_one_error_line(proc, f"--nproc must be at least 1, got {nproc}")
    assert snapshot(out) == before


def test_a_batch_that_does_not_split_over_the_processes_is_refused_before_they_start(run_cli, tmp_path):
    proc = run_cli("run", "--algo", "rnb", *TINY_CLI, "--out", str(tmp_path / "out"), "--batch-size", "5",
                   "--nproc", "2")
    assert_one_error_line(proc, "--batch-size 5 does not split evenly over 2 processes")
    assert not (tmp_path / "out").exists()
