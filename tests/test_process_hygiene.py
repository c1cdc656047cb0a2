"""No process trains without its parent, and no cell is trained twice at once.

- The cells of `compare --jobs N` and the ranks of `run --nproc N` end when the process that
  started them is killed outright (SIGKILL: it can stop nobody): each is told by SIGTERM and
  saves its record as interrupted (before, they trained on, and a rerun trained the same cells
  beside them).
- A cell holds a lock while it runs: a second compare on the same --out leaves it to the first,
  comes back to it, and keeps what the first made (before, both ran every cell).

Real processes, real signals; the ones that train are marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mixbench.experiments.compare import CellSettings, run_cell
from mixbench.experiments.settings import RunSettings, TrackingSettings
from mixbench.storage.locks import FileLock
from tests.conftest import default_signals, mixbench_command

TINY = ["--task", "synthetic", "--domains", "original", "--steps-per-round", "10", "--batch-size", "4",
        "--seq-len", "32", "--n-layer", "1", "--n-embd", "32", "--device", "cpu", "--no-mlflow", "--no-progress"]


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")   # a zombie has ended; only its exit status waits to be read


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds:.0f} s for {what}")
        time.sleep(0.2)


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, MIXBENCH_CACHE=str(cwd / "cache"))
    return subprocess.Popen(mixbench_command() + args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)


def kill_outright_and_check_the_children_end(parent: subprocess.Popen, workers: list[int]) -> None:
    parent.send_signal(signal.SIGKILL)
    parent.communicate(timeout=30)
    try:
        wait_for(lambda: not any(alive(pid) for pid in workers), 60, "the orphaned children to end")
    finally:
        for pid in workers:   # whatever happened, leave nothing training
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_the_cells_of_a_compare_killed_outright_end_and_keep_their_record(tmp_path):
    compare = start(["compare", *TINY, "--algos", "stratified", "--seeds", "0,1", "--steps", "100000", "--jobs", "2",
                     "--out", "out"], tmp_path)
    checkpoints = [tmp_path / f"out/synthetic/stratified/original/seed{s}.ckpt" for s in (0, 1)]
    wait_for(lambda: all(p.exists() for p in checkpoints), 120, "both cells to train")
    cells = children(compare.pid)
    assert len(cells) == 2
    kill_outright_and_check_the_children_end(compare, cells)
    for seed in (0, 1):
        result = json.loads((tmp_path / f"out/synthetic/stratified/original/seed{seed}.json").read_text())
        assert result["status"] == "interrupted" and result["error"] == "interrupted by SIGTERM"


@pytest.mark.slow
def test_the_ranks_of_a_launcher_killed_outright_end_and_keep_their_record(tmp_path):
    launcher = start(["run", "--algo", "stratified", *TINY, "--steps", "100000", "--nproc", "2", "--out", "out"],
                     tmp_path)
    checkpoint = tmp_path / "out/synthetic/stratified/original/seed0.ckpt"
    wait_for(checkpoint.exists, 120, "the ranks to train")
    ranks = children(launcher.pid)
    assert len(ranks) == 2
    kill_outright_and_check_the_children_end(launcher, ranks)
    result = json.loads((tmp_path / "out/synthetic/stratified/original/seed0.json").read_text())
    assert result["status"] == "interrupted"


@pytest.mark.slow
def test_two_compares_on_one_out_run_each_cell_once(tmp_path):
    """The second starts while the first is inside its first cell: it leaves that cell to the
    first, runs the other, and each keeps what the other made."""
    args = ["compare", *TINY, "--algos", "stratified", "--seeds", "0,1", "--steps", "100", "--out", "out"]
    first = start(args, tmp_path)
    wait_for((tmp_path / "out/synthetic/stratified/original/seed0.ckpt").exists, 120, "the first compare's first cell")
    second = start(args, tmp_path)
    errs = [p.communicate(timeout=300)[1] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, errs

    def trained(err: str) -> int:
        """Cells this compare trained itself: those it started, less those it left to the other."""
        started = sum(line.startswith("[") and "] stratified" in line for line in err.splitlines())
        return started - err.count("finished by another process meanwhile; kept")

    assert trained(errs[0]) + trained(errs[1]) == 2, errs
    assert "another process is running this cell" in errs[1], errs[1]
    for seed in (0, 1):
        assert json.loads((tmp_path / f"out/synthetic/stratified/original/seed{seed}.json").read_text())["status"] \
            == "finished"


def test_a_lock_is_one_process_at_a_time_and_ends_with_its_holder(tmp_path):
    path = tmp_path / "seed0.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom mixbench.storage.locks import FileLock\n"
                               f"FileLock({str(path)!r}).acquire()\nprint('held', flush=True)\ntime.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = FileLock(path)
        assert not lock.acquire(wait=False) and not lock.held
        holder.send_signal(signal.SIGKILL)   # the kernel lets go of a dead process's lock
        holder.wait(timeout=30)
        assert lock.acquire(wait=False) and lock.held
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_cell_another_process_runs_is_left_to_it(tmp_path):
    settings = RunSettings.resolve(task="synthetic", algo="stratified", params=None, overrides={"steps": 10},
                                   domains="original", out_dir=tmp_path / "out",
                                   tracking=TrackingSettings(enabled=False), progress=False, resume="when_possible")
    reuse = CellSettings.of(settings, "1", None)
    with FileLock(settings.result_path.with_suffix(".lock")):
        # The lock is held here as another process would hold it (flock locks are per open file).
        assert run_cell(settings, reuse, keep=False, wait=False) is False
    assert not settings.result_path.exists()   # nothing was trained
