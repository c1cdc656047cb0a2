"""The command line as a user meets it: real subprocesses, real MLflow (sqlite in tmp)."""

import json
import re

import pytest

FAST = ["--task", "synthetic", "--steps", "20", "--steps-per-round", "5", "--domains", "original", "--no-progress"]


@pytest.mark.slow
def test_run_writes_results_and_mlflow(run_cli, tmp_path):
    proc = run_cli("run", "--algo", "rnb", *FAST, "--lam", "2", "--out", "out")
    assert proc.returncode == 0, proc.stderr
    assert "mean eval loss" in proc.stdout and "overhead:" in proc.stdout
    path = tmp_path / "out" / "synthetic" / "rnb" / "original" / "seed0.json"
    result = json.loads(path.read_text())
    assert result["status"] == "finished"
    assert result["strategy"]["name"] == "rnb" and result["strategy"]["params"]["lam"] == 2.0
    assert len(result["strategy"]["extras"]["last_gram"]) == 4  # rnb keeps its last 4×4 Gram for reports
    assert result["metrics"]["final_mean_eval_loss"] < result["metrics"]["initial_mean_eval_loss"]
    assert len(result["mixture"]["per_round"]) == 4
    assert result["overhead"]["flops_by_label"]["strategy/gq"] > 0
    assert result["environment"]["torch"].startswith("2.")

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("mixbench")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["strategy.lam"] == "2.0"
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 20
    assert len(client.get_metric_history(run.info.run_id, "mean_eval_loss")) == 4
    assert any(k.startswith("p/000_d0") for k in run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"seed0.json", "seed0.mixture.png"} <= artifacts


@pytest.mark.slow
def test_stratified_costs_nothing(run_cli, tmp_path):
    proc = run_cli("run", "--algo", "stratified", *FAST, "--no-mlflow", "--out", "out")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "out/synthetic/stratified/original/seed0.json").read_text())
    assert result["overhead"]["overhead_flops"] == 0.0
    assert result["overhead"]["flops_pct"] == 0.0
    assert set(result["mixture"]["final"]) == {0.25}


def test_list_shows_strategies_and_tasks(run_cli):
    # No dolly data anywhere (a relative MIXBENCH_DATA, so the message's path is short and known).
    proc = run_cli("list", env={"MIXBENCH_DATA": "no-data", "MIXBENCH_DOLLY": "", "MIXBENCH_DOLLY_HUB": ""})
    assert proc.returncode == 0, proc.stderr
    for name in ("rnb", "stratified", "static", "champ", "synthetic", "--lam 3.0", "status: ready"):
        assert name in proc.stdout
    tasks = re.search(r"^tasks:\n(.*?)(?=^\S|\Z)", proc.stdout, re.M | re.S).group(1)   # up to any next section
    # each task: modality, original domains (or "from data"), default model, data status
    assert "text, 72 original domains, model gpt, 400 steps, K=40" in tasks          # champ
    assert "text, original domains from data, model gpt" in tasks                   # natinst, s1, evals
    dolly = re.search(r"^  dolly .*?(?=^  \S|\Z)", tasks, re.M | re.S).group()   # up to the next task's name
    assert "text, 8 original domains, model gpt" in dolly
    assert "status: missing: put databricks-dolly-15k.jsonl" in dolly and "no-data/dolly" in dolly
    assert all(len(line) <= 100 for line in tasks.splitlines()), "task lines wrap at 100 columns"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--algo", "rbn"], "did you mean 'rnb'"),
        (["--algo", "rnb", "--task", "chmp"], "did you mean 'champ'"),
        (["--algo", "rnb", "--lam", "0"], "lam must be a positive"),
        (["--algo", "rnb", "--lam", "-2"], "lam must be a positive"),
        (["--algo", "rnb", "--lam", "nan"], "lam must be a positive"),
        (["--algo", "rnb", "--lam", "x"], "Invalid value for '--lam': 'x' is not a valid float."),
        (["--algo", "rnb", "--steps", "0"], "steps must be positive"),
        (["--algo", "rnb", "--steps", "-3"], "steps must be positive"),
        (["--algo", "rnb", "--steps", "10", "--steps-per-round", "11"], "larger than steps"),
        (["--algo", "rnb", "--steps-per-round", "0"], "steps-per-round must be positive"),
        (["--algo", "stratified", "--lam", "3"], "no such option --lam"),
        (["--algo", "rnb", "--device", "tpu"], "device must be"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_input_is_one_line_and_exit_2(run_cli, args, message):
    task = [] if "--task" in args else ["--task", "synthetic"]
    proc = run_cli("run", *args, *task, "--no-mlflow")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stderr


def test_unwritable_output_dir(run_cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = run_cli("run", "--algo", "rnb", *FAST, "--no-mlflow", "--out", str(blocker / "sub"))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: cannot write results to")
    assert blocker.read_text() == "not a directory"  # nothing already there was touched
