"""Runs and compares started together in one folder all land: MLflow's sqlite store is created
once (its schema setup races otherwise), and every results file and MLflow run is complete."""

import json
import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import mixbench_command

SHORT = ["--task", "synthetic", "--steps", "10", "--steps-per-round", "5", "--domains", "original", "--no-progress"]

FIRST_CONTACT = """
import sys
from mixbench.experiments.tracking import MlflowTracker

tracker = MlflowTracker(experiment="race", run_name=sys.argv[1])
tracker.log_metric("x", 1.0, 0)
tracker.finish("FINISHED")
print("active" if tracker.active else "offline")
"""


def test_first_contacts_with_a_new_database_all_land(tmp_path):
    """Four trackers open one fresh sqlite store at once: each gets its run, none goes offline."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db")
    procs = [subprocess.Popen([sys.executable, "-c", FIRST_CONTACT, f"r{i}"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    outcomes = [(p.communicate(timeout=120), p.returncode) for p in procs]
    for (out, err), code in outcomes:
        assert code == 0 and out.strip() == "active" and "tracking failed" not in err, err
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["r0", "r1", "r2", "r3"]
    assert {r.info.status for r in runs} == {"FINISHED"}


@pytest.mark.slow
def test_four_runs_and_a_compare_started_together_in_a_fresh_folder_all_land(tmp_path):
    """The hammer: no MLFLOW_TRACKING_URI, so all five create ./mlflow.db of the folder at once."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MIXBENCH_CACHE"] = str(tmp_path / "cache")
    commands = [["run", "--algo", "stratified", *SHORT, "--seed", str(seed), "--out", "out"] for seed in range(4)]
    commands.append(["compare", "--algos", "stratified,static", "--seeds", "0", *SHORT, "--out", "grid"])
    procs = [subprocess.Popen(mixbench_command() + c, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in commands]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and "tracking failed" not in err, err
    results = [tmp_path / f"out/synthetic/stratified/original/seed{seed}.json" for seed in range(4)]
    results += [tmp_path / f"grid/synthetic/{algo}/original/seed0.json" for algo in ("stratified", "static")]
    assert [json.loads(p.read_text())["status"] for p in results] == ["finished"] * 6
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = [r for name in ("mixbench", "mixbench-compare")
            for r in client.search_runs([client.get_experiment_by_name(name).experiment_id])]
    assert len(runs) == 4 + 1 + 2 and {r.info.status for r in runs} == {"FINISHED"}
