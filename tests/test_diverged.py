"""A run whose loss stops being finite ends early as `diverged` (its step, exit 3, MLflow FAILED),
and compare and report count such cells instead of crashing on them."""

import csv
import json

from mlflow.tracking import MlflowClient


def test_a_diverged_run_says_so_and_where(run_cli, tmp_path):
    proc = run_cli("run", "--algo", "stratified", "--task", "synthetic", "--lr", "1e6", "--no-progress",
                   "--out", "out")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and "training diverged at step" in proc.stderr
    result = json.loads((tmp_path / "out/synthetic/stratified/original/seed0.json").read_text())
    step = int(result["error"].split("step ")[1].split(":")[0])
    assert result["status"] == "diverged" and len(result["train_losses"]) == step - 1
    assert all(loss is not None for loss in result["train_losses"])   # only the finite steps are kept
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("mixbench").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_compare_and_report_count_diverged_cells(run_cli, tmp_path):
    args = ("compare", "--task", "synthetic", "--algos", "stratified,rnb", "--seeds", "0,1", "--steps", "20",
            "--domains", "original", "--no-mlflow", "--no-progress", "--out", "bad", "--lr", "1e6")
    proc = run_cli(*args)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("diverged (see its results file); going on") == 4
    with open(tmp_path / "bad/synthetic/summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["algo"], r["seeds"], r["diverged"], r["failed"]) for r in rows] == [
        ("rnb", "0", "2", "0"), ("stratified", "0", "2", "0")]
    again = run_cli(*args)   # settled: not rerun
    assert "4 already finished, 0 to run" in again.stderr
    report = run_cli("report", "bad")
    assert report.returncode == 0 and "seeds diverged" in (tmp_path / "bad/report/report.md").read_text()
    assert "| 2 |" in (tmp_path / "bad/report/report.md").read_text()
