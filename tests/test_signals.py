"""Every way a command ends short of SIGKILL leaves its results and closes its MLflow runs: SIGTERM
and SIGHUP act as Ctrl-C does. After a SIGKILL, the next start closes the runs left behind. Real
signals on real subprocesses."""

import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import default_signals, mixbench_command

SHORT = ["--task", "synthetic", "--steps-per-round", "5", "--domains", "original", "--no-progress"]
ENDLESS = [*SHORT, "--steps", "100000"]   # never finishes on its own: only a signal ends it


def env_for(tmp_path) -> dict:
    return dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db",
                MIXBENCH_CACHE=str(tmp_path / "cache"))


def start(tmp_path, *args, **popen) -> subprocess.Popen:
    popen.setdefault("preexec_fn", default_signals)   # as from a terminal, however pytest was started
    return subprocess.Popen(mixbench_command() + list(args), cwd=tmp_path, env=env_for(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_for_training(tmp_path, proc: subprocess.Popen, steps: int = 3, timeout: float = 120) -> None:
    """Until `steps` train losses are in the MLflow database: the run is training."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            with sqlite3.connect(tmp_path / "mlflow.db", timeout=1) as db:
                (count,) = db.execute("select count(*) from metrics where key = 'train_loss'").fetchone()
            if count >= steps:
                return
        except sqlite3.Error:   # no database or no table yet
            pass
        time.sleep(0.2)
    raise AssertionError("the run never started training")


def mlflow_runs(tmp_path, experiment: str) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


@pytest.mark.parametrize("signals", [["SIGTERM"], ["SIGHUP"], ["SIGTERM", "SIGTERM", "SIGHUP"]])
def test_termination_signals_save_the_run_and_kill_its_mlflow_run(tmp_path, signals):
    proc = start(tmp_path, "run", "--algo", "stratified", *ENDLESS, "--out", "out")
    wait_for_training(tmp_path, proc)
    for name in signals:   # a burst of repeats must not cut the saving short
        proc.send_signal(getattr(signal, name))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    result = json.loads((tmp_path / "out/synthetic/stratified/original/seed0.json").read_text())
    assert result["status"] == "interrupted" and result["error"] in {f"interrupted by {name}" for name in signals}
    assert result["metrics"]["steps_done"] >= 3
    assert [r.info.status for r in mlflow_runs(tmp_path, "mixbench")] == ["KILLED"]


def test_sigterm_ends_a_compare_with_its_parent_and_child_runs_closed(tmp_path):
    proc = start(tmp_path, "compare", "--algos", "stratified,static", "--seeds", "0", *SHORT, "--steps", "100000",
                 "--out", "out")
    wait_for_training(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "compare interrupted" in err and "Traceback" not in err, err
    result = json.loads((tmp_path / "out/synthetic/stratified/original/seed0.json").read_text())
    assert result["status"] == "interrupted"
    runs = mlflow_runs(tmp_path, "mixbench-compare")
    (parent,) = [r for r in runs if r.data.tags.get("mixbench.kind") == "compare"]
    (child,) = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "KILLED" and child.info.status == "KILLED"


def test_a_hangup_the_caller_ignores_stays_ignored(tmp_path):
    """`nohup mixbench run ...` must survive the terminal closing."""
    proc = start(tmp_path, "run", "--algo", "stratified", *SHORT, "--steps", "100", "--out", "out",
                 preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    wait_for_training(tmp_path, proc)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads((tmp_path / "out/synthetic/stratified/original/seed0.json").read_text())["status"] == "finished"


def test_the_next_start_closes_runs_left_running_by_a_killed_process(tmp_path):
    proc = start(tmp_path, "run", "--algo", "stratified", *ENDLESS, "--out", "out")
    wait_for_training(tmp_path, proc)
    proc.kill()
    proc.communicate(timeout=60)   # reaped: its pid no longer names a process
    (orphan,) = mlflow_runs(tmp_path, "mixbench")
    assert orphan.info.status == "RUNNING"
    again = subprocess.run(mixbench_command() + ["run", "--algo", "stratified", *SHORT, "--steps", "5", "--seed", "1",
                                                 "--out", "out"], cwd=tmp_path, env=env_for(tmp_path),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "marked 1 MLflow run(s) of this experiment KILLED" in again.stderr and orphan.info.run_id in again.stderr
    statuses = {r.info.run_id: r.info.status for r in mlflow_runs(tmp_path, "mixbench")}
    assert statuses.pop(orphan.info.run_id) == "KILLED" and list(statuses.values()) == ["FINISHED"]
