"""`mixbench compare --jobs N`: cells side by side in their own processes give the results the
one-at-a-time grid gives; one line per finished cell; a failing cell fails alone; Ctrl-C stops
every cell with its record kept; a bad --jobs is one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import default_signals, mixbench_command

GRID = ["--task", "synthetic", "--algos", "stratified,rnb", "--seeds", "0", "--domains", "original", "--steps", "20",
        "--steps-per-round", "10", "--batch-size", "4", "--seq-len", "32", "--n-layer", "1", "--n-embd", "32",
        "--device", "cpu", "--no-mlflow", "--no-progress"]
CELLS = [Path("synthetic/stratified/original/seed0.json"), Path("synthetic/rnb/original/seed0.json")]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def cell(out: Path, i: int) -> dict:
    return json.loads((out / CELLS[i]).read_text())


@pytest.mark.slow
def test_two_jobs_give_the_results_of_one(run_cli, tmp_path):
    one = run_cli("compare", *GRID, "--out", str(tmp_path / "one"), env={"OMP_NUM_THREADS": "1"})
    two = run_cli("compare", *GRID, "--out", str(tmp_path / "two"), "--jobs", "2", env={"OMP_NUM_THREADS": "1"})
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    def untimed(rounds):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rounds]

    for i in range(2):
        a, b = cell(tmp_path / "one", i), cell(tmp_path / "two", i)
        assert b["status"] == "finished"
        assert b["train_losses"] == a["train_losses"] and untimed(b["rounds"]) == untimed(a["rounds"])
    # The same table (but the seconds), and one line per finished cell.
    def table(out):
        return [line.split(",")[:6] for line in (out / "synthetic" / "summary.csv").read_text().splitlines()]
    assert table(tmp_path / "two") == table(tmp_path / "one")
    finished = [line for line in two.stderr.splitlines() if line.startswith("[") and ": finished, final loss" in line]
    assert len(finished) == 2, two.stderr
    assert "2 at a time" in two.stderr
    # A rerun finds every cell finished and starts none.
    again = run_cli("compare", *GRID, "--out", str(tmp_path / "two"), "--jobs", "2")
    assert again.returncode == 0 and "2 already finished, 0 to run" in again.stderr


@pytest.mark.slow
def test_a_failing_cell_fails_alone(run_cli, tmp_path):
    """rnb cannot fit its tap in 0.001 MiB; stratified has no tap and finishes."""
    proc = run_cli("compare", *GRID, "--out", str(tmp_path), "--jobs", "2", "--tap-memory", "0.001")
    assert proc.returncode == 1, proc.stderr
    assert cell(tmp_path, 0)["status"] == "finished"
    assert "rnb · original · seed 0: failed: error: --tap-memory" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_ctrl_c_stops_every_cell_and_keeps_their_records(tmp_path):
    """SIGINT to the whole process group, as Ctrl-C at a terminal: both cells save their record
    (interrupted) and checkpoint; compare exits 130; the next compare resumes them."""
    env = dict(os.environ, MIXBENCH_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    long_grid = [*GRID[:GRID.index("--steps") + 1], "4000", *GRID[GRID.index("--steps") + 2:]]
    proc = subprocess.Popen(mixbench_command() + ["compare", *long_grid, "--out", str(tmp_path), "--jobs", "2"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=default_signals)
    checkpoints = [(tmp_path / c).with_suffix(".ckpt") for c in CELLS]
    deadline = time.time() + 300
    while not all(c.exists() for c in checkpoints) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert all(c.exists() for c in checkpoints), "the cells never checkpointed"
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    for i in range(2):
        assert cell(tmp_path, i)["status"] == "interrupted"
        assert checkpoints[i].exists()
    assert stderr.count("interrupted: its record and checkpoint are kept") == 2, stderr


@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_a_bad_jobs_is_one_line_and_touches_nothing(run_cli, tmp_path, jobs):
    out = tmp_path / "out"
    (out / CELLS[0]).parent.mkdir(parents=True)
    (out / CELLS[0]).write_text('{"a result": "already there"}')
    before = snapshot(out)
    proc = run_cli("compare", *GRID, "--out", str(out), "--jobs", jobs)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: --jobs must be at least 1, got {jobs}"], proc.stderr
    assert snapshot(out) == before
