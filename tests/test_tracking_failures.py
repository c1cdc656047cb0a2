"""Tracking never costs the training: a store that breaks mid-run, or a tracking server that does
not answer, gets one warning and the run goes on, its results JSON the record."""

import json
import socket
import sqlite3
import subprocess
import sys

import pytest

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


TRICKLING_SERVER = """
import socket, threading, time
from mixbench.experiments.tracking import MlflowTracker

def trickle(server):   # answers every request with a status line, then one header line a second, for ever
    while True:
        connection, _ = server.accept()
        def drip(c=connection):
            try:
                c.recv(65536)
                c.sendall(b"HTTP/1.1 200 OK\\r\\n")
                while True:
                    c.sendall(b"X-Trickle: 1\\r\\n")
                    time.sleep(1)
            except OSError:
                pass
        threading.Thread(target=drip, daemon=True).start()

with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    threading.Thread(target=trickle, args=(server,), daemon=True).start()
    started = time.monotonic()
    tracker = MlflowTracker(tracking_uri=f"http://127.0.0.1:{server.getsockname()[1]}", run_name="x")
    seconds = time.monotonic() - started
print(tracker.active, tracker.run_id, round(seconds))
"""


def test_a_server_that_trickles_its_answer_is_given_up_at_the_deadline(tmp_path):
    """requests' timeout counts the wait for each read: a header line a second resets it, and the
    run waited for ever before step 0. The health check has a deadline in all."""
    proc = subprocess.run([sys.executable, "-c", TRICKLING_SERVER], cwd=tmp_path, env=env_for(tmp_path),
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    active, run_id, seconds = proc.stdout.split()
    assert active == "False" and run_id == "None" and int(seconds) < 15
    assert proc.stderr.count(WARNING) == 1 and "no answer from the tracking server" in proc.stderr, proc.stderr


START = """
import resource, sys
limit = int(sys.argv[1])
if limit:   # no file may grow past `limit` bytes: a disk that fills during MLflow's first migration
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
from mixbench.experiments.tracking import MlflowTracker
tracker = MlflowTracker(tracking_uri=sys.argv[2], run_name="x")
print(tracker.active)
"""


# Where MLflow 3.17's first migration of a sqlite store stops when the file may grow no further:
# each leaves a half-made schema (the next start failed with "duplicate column name: step" and
# "table registered_models already exists").
@pytest.mark.slow
@pytest.mark.parametrize("limit", [53248, 86016])
def test_a_store_whose_first_migration_was_cut_short_is_made_anew(tmp_path, limit):
    database = tmp_path / "mlflow.db"
    uri = f"sqlite:///{database}"
    full = subprocess.run([sys.executable, "-c", START, str(limit), uri], cwd=tmp_path, env=env_for(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert full.stdout.split() == ["False"] and full.stderr.count(WARNING) == 1, full.stderr
    with sqlite3.connect(database) as db:   # what the cut-short migration left: tables, no experiment
        tables = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
        assert "experiments" in tables and db.execute("select count(*) from experiments").fetchone() == (0,)
    again = subprocess.run([sys.executable, "-c", START, "0", uri], cwd=tmp_path, env=env_for(tmp_path),
                           capture_output=True, text=True, timeout=120)
    assert again.stdout.split() == ["True"], again.stderr   # room again: tracking works
    assert WARNING not in again.stderr
    [moved] = [line for line in again.stderr.splitlines() if "half-made" in line]
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("mlflow.db.broken-")]
    assert str(aside) in moved
