"""Tracking never costs the training: a store that breaks mid-run, or a tracking server that does
not answer, gets one warning and the run goes on, its results JSON the record."""

import json
import socket
import sqlite3
import subprocess
import sys

from tests.conftest import mixbench_command
from tests.test_signals import SHORT, env_for, start, wait_for_training

WARNING = "MLflow tracking failed"


def test_a_store_broken_mid_run_warns_once_and_training_finishes(tmp_path):
    proc = start(tmp_path, "run", "--algo", "stratified", *SHORT, "--steps", "100", "--out", "out")
    wait_for_training(tmp_path, proc)
    with sqlite3.connect(tmp_path / "mlflow.db", timeout=30) as db:
        db.execute("drop table metrics")   # every later metric write fails inside MLflow
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert err.count(WARNING) == 1, err
    result = json.loads((tmp_path / "out/synthetic/stratified/original/seed0.json").read_text())
    assert result["status"] == "finished" and result["metrics"]["steps_done"] == 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_tracking_server_warns_and_the_run_goes_on_untracked(tmp_path):
    env = dict(env_for(tmp_path), MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    proc = subprocess.run(mixbench_command() + ["run", "--algo", "stratified", *SHORT, "--steps", "10", "--out", "out"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count(WARNING) == 1 and "no answer from the tracking server" in proc.stderr
    assert "mlflow: run" not in proc.stdout   # the summary does not point at a run that does not exist
    assert json.loads((tmp_path / "out/synthetic/stratified/original/seed0.json").read_text())["status"] == "finished"


SILENT_SERVER = """
import socket, sys, time
from mixbench.experiments.tracking import MlflowTracker

with socket.socket() as silent:   # accepts connections (into its backlog) but never replies
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    started = time.monotonic()
    tracker = MlflowTracker(tracking_uri=f"http://127.0.0.1:{silent.getsockname()[1]}", run_name="x")
    seconds = time.monotonic() - started
tracker.log_params({"a": 1})         # offline: every call does nothing, and raises nothing
tracker.log_metrics({"loss": 1.0}, step=0)
tracker.finish("FINISHED")
print(tracker.active, tracker.run_id, round(seconds))
"""


def test_a_server_that_never_answers_is_given_up_within_seconds(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SILENT_SERVER], cwd=tmp_path, env=env_for(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    active, run_id, seconds = proc.stdout.split()
    assert active == "False" and run_id == "None" and int(seconds) < 15
    assert proc.stderr.count(WARNING) == 1, proc.stderr
