"""compare, its summary, resuming after a kill, and report."""

import json
import math
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from scipy import stats

from mixbench.config import TrainConfig
from mixbench.engine.history import RoundRecord
from mixbench.engine.meter import OverheadReport
from mixbench.experiments.results import (
    DomainsRecord,
    Environment,
    Metrics,
    MixtureTrajectory,
    Overhead,
    RunResult,
    StrategyRecord,
    TaskRecord,
)
from mixbench.experiments.summary import summarize
from tests.conftest import default_signals, mixbench_command

GRID = ["--task", "synthetic", "--steps", "20", "--steps-per-round", "5", "--domains", "original",
        "--no-progress"]


def finished_result(algo: str, seed: int, final: float, rounds=((5, 4.0), (10, 3.0), (20, 2.0)),
                    status: str = "finished") -> RunResult:
    """A real RunResult of a one-domain run, with what a comparison reads set by hand: the final
    loss, the (step, loss) at each round end, the overhead (1 % of FLOPs, 0.5 % of seconds, none
    for stratified). The losses are by the task's original domains, as compare reads them."""
    losses = {"d0": final}
    metrics = Metrics(
        initial_mean_eval_loss=5.0, final_mean_eval_loss=final, initial_eval_losses={"d0": 5.0},
        final_eval_losses=losses, initial_reference_eval_loss=5.0, final_reference_eval_loss=final,
        final_reference_eval_losses=losses, reference_proportions={"d0": 1.0}, initial_eval_metrics={},
        final_eval_metrics={}, final_domain_eval_metrics={}, steps_done=rounds[-1][0], tokens_trained=1000,
        num_params=100, train_seconds=2.0, eval_rows=[0, 1])
    report = OverheadReport(train_flops=100.0, overhead_flops=0.0 if algo == "stratified" else 1.0,
                            paper_flops=0.0, train_seconds=2.0, overhead_seconds=0.01, flops_by_label={},
                            seconds_by_label={})
    records = [RoundRecord(round_index=i, step=step, mixture=[1.0], counts=[8], eval_losses=[loss],
                           mean_eval_loss=loss, train_loss=loss, seconds=0.1, reference_eval_loss=loss,
                           reference_eval_losses=[loss])
               for i, (step, loss) in enumerate(rounds)]
    return RunResult(
        status=status, error=None if status == "finished" else "stopped", started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:01:00+00:00", strategy=StrategyRecord(name=algo, params={}),
        task=TaskRecord(name="synthetic", description="fake", source="tests", license="MIT", version="1",
                        modality="text", original_domains=1, num_domains=1),
        domains=DomainsRecord(method="original", names=["d0"]), seed=seed,
        config=TrainConfig(steps=rounds[-1][0], steps_per_round=rounds[0][0], seed=seed),
        environment=Environment(mixbench="0", torch="2", numpy="2", python="3", platform="test", device="cpu",
                                git_hash="unknown"),
        metrics=metrics, overhead=Overhead.of(report, None), eval_proportions=[1.0],
        mixture=MixtureTrajectory(per_round=[[1.0]] * len(records), final=[1.0]), rounds=records,
        train_losses=[3.0] * rounds[-1][0])


def test_summary_pairs_seeds_and_tests_the_difference():
    strat = [2.0, 2.2, 2.1]
    algo = [1.9, 2.15, 1.95]
    results = [finished_result("stratified", s, v) for s, v in enumerate(strat)] + \
              [finished_result("rnb", s, v, rounds=((5, 3.0), (10, 2.05), (20, v))) for s, v in enumerate(algo)]
    # An unfinished run is left out of the summary, whatever its numbers.
    results.append(finished_result("rnb", 3, 0.1, status="interrupted"))
    table = summarize(results).set_index("algo")
    row = table.loc["rnb"]
    assert row.final_loss_mean == pytest.approx(np.mean(algo))
    assert row.final_loss_std == pytest.approx(np.std(algo, ddof=1))
    assert row.diff_vs_stratified == pytest.approx(np.mean(np.subtract(algo, strat)))
    assert row.paired_t_p == pytest.approx(stats.ttest_rel(algo, strat).pvalue)
    assert row.overhead_flops_pct == 1.0
    assert math.isnan(table.loc["stratified"].paired_t_p)
    assert row.seeds == 3 and row.overhead_seconds_pct == pytest.approx(0.5)
    assert results[3].steps_to_reach(2.0) == 20 and results[3].steps_to_reach(2.1) == 10
    assert math.isnan(results[3].steps_to_reach(1.0))


@pytest.mark.slow
def test_compare_runs_the_grid_logs_mlflow_and_skips_finished_cells(run_cli, tmp_path):
    proc = run_cli("compare", "--algos", "stratified,rnb", "--seeds", "0,1", *GRID, "--out", "out")
    assert proc.returncode == 0, proc.stderr
    assert "4 to run" in proc.stderr
    assert "stratified" in proc.stdout and "rnb" in proc.stdout and "p (paired t)" in proc.stdout
    for algo in ("stratified", "rnb"):
        for seed in (0, 1):
            assert json.loads((tmp_path / f"out/synthetic/{algo}/original/seed{seed}.json").read_text())["status"] \
                == "finished"
    assert (tmp_path / "out/synthetic/summary.csv").read_text().startswith("algo,domains,seeds")
    assert "| rnb | original | 2 |" in (tmp_path / "out/synthetic/summary.md").read_text()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("mixbench-compare").experiment_id])
    parents = [r for r in runs if r.data.tags.get("mixbench.kind") == "compare"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 4
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"summary.json", "eval_loss.png"} <= artifacts

    again = run_cli("compare", "--algos", "stratified,rnb", "--seeds", "0,1", *GRID, "--out", "out")
    assert again.returncode == 0 and "4 already finished, 0 to run" in again.stderr


def test_compare_takes_strategy_hyperparameters_and_never_mixes_settings(run_cli, tmp_path):
    args = ("compare", "--algos", "rnb,rnb", "--seeds", "0", *GRID, "--steps", "20", "--out", "out", "--no-mlflow")
    cell = tmp_path / "out/synthetic/rnb/original/seed0.json"
    first = run_cli(*args, "--param", "rnb.lam=1.5")
    assert first.returncode == 0 and "1 cells" in first.stderr, first.stderr   # a repeated algo runs once
    assert json.loads(cell.read_text())["strategy"]["params"]["lam"] == 1.5
    assert "1 already finished, 0 to run" in run_cli(*args, "--param", "rnb.lam=1.5").stderr
    # Other settings: refused with --keep-cells, rerun (saying why) without.
    kept = run_cli(*args, "--keep-cells")
    assert kept.returncode == 2 and "ran with other settings (rnb.lam)" in kept.stderr, kept.stderr
    rerun = run_cli(*args, "--batch-size", "4")
    assert rerun.returncode == 0 and "ran with other settings (batch_size, rnb.lam)" in rerun.stderr, rerun.stderr
    ran = json.loads(cell.read_text())
    assert ran["strategy"]["params"]["lam"] == 3.0 and ran["config"]["batch_size"] == 4


def test_a_regrouped_cell_made_by_another_embedder_identity_is_rerun(run_cli, tmp_path):
    """The embedder is compared by its identity (its options included), not its name: a cell
    regrouped by minilm's old 64-piece default is not reused once the default sees more."""
    args = ("compare", "--algos", "stratified", "--seeds", "0", "--task", "synthetic", "--steps", "10",
            "--steps-per-round", "5", "--domains", "regroup:3", "--embedder", "tfidf", "--out", "out", "--no-mlflow")
    assert run_cli(*args).returncode == 0
    cell = tmp_path / "out/synthetic/stratified/regroup/seed0.json"
    assert "1 already finished, 0 to run" in run_cli(*args).stderr
    result = json.loads(cell.read_text())
    result["domains"]["embedder"] += "-other-options"   # same name, another identity
    cell.write_text(json.dumps(result))
    again = run_cli(*args)
    assert again.returncode == 0 and "ran with other settings (embedder)" in again.stderr, again.stderr


@pytest.mark.slow
def test_killed_compare_resumes_only_the_missing_cells(tmp_path):
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db",
               MIXBENCH_CACHE=str(tmp_path / "cache"))
    args = mixbench_command() + ["compare", "--algos", "stratified,static", "--seeds", "0,1,2", *GRID,
                                 "--steps", "60", "--out", "out", "--no-mlflow"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_signals)   # Ctrl-C works, however pytest was started
    first = tmp_path / "out/synthetic/stratified/original/seed0.json"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    done = sorted(p.name for p in (tmp_path / "out/synthetic").rglob("seed*.json")
                  if json.loads(p.read_text())["status"] == "finished")
    assert 1 <= len(done) < 6
    resumed = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(done)} already finished, {6 - len(done)} to run" in resumed.stderr


@pytest.mark.parametrize("args,message", [
    (["--algos", "stratified,rbn"], "did you mean 'rnb'"),
    (["--algos", "stratified", "--seeds", ""], "--seeds is empty"),
    (["--algos", "stratified", "--seeds", "0,x"], "comma-separated integers"),
    (["--algos", ","], "--algos is empty"),
    (["--algos", "rnb", "--param", "aioli.eta=0.2"], "'aioli' is not among --algos"),
    (["--algos", "rnb", "--param", "rnb.lam"], "--param takes ALGO.NAME=VALUE"),
    (["--algos", "rnb", "--param", "rnb.lamda=2"], "no such option --lamda"),
    (["--algos", "rnb", "--param", "rnb.lam=x"], "'x' is not a valid float"),
    (["--algos", "rnb", "--param", "rnb.lam=-1"], "rnb: lam"),
])
def test_compare_bad_input(run_cli, args, message):
    proc = run_cli("compare", "--task", "synthetic", *args, "--no-mlflow", "--no-progress")
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.slow
def test_report_renders_every_plot(run_cli, tmp_path):
    assert run_cli("compare", "--algos", "stratified,rnb", "--seeds", "0,1", *GRID, "--steps", "30",
                   "--out", "out", "--no-mlflow").returncode == 0
    assert run_cli("regroup", "--task", "synthetic", "--k", "2:6", "--embedder", "tfidf", "--out", "out",
                   "--no-mlflow", "--no-progress").returncode == 0
    proc = run_cli("report", "out")
    assert proc.returncode == 0, proc.stderr
    report = tmp_path / "out/report"
    for name in ("eval_loss.png", "overhead.png", "gram.png", "mixture_rnb_original.png", "report.html"):
        assert (report / name).stat().st_size > 1000, name
    md = (report / "report.md").read_text()
    assert "paper Table 1 range" in md and "![R&B's last Gram matrix](gram.png)" in md
    assert any(p.name.startswith("k_sweep_synthetic") for p in report.iterdir())
    assert "<table>" in (report / "report.html").read_text()


def test_report_bad_input(run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_cli("report", "empty")
    assert proc.returncode == 2 and "no mixbench results" in proc.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "seed0.json").write_text("{not json")
    proc = run_cli("report", "bad")
    assert proc.returncode == 2 and "seed0.json" in proc.stderr and "Traceback" not in proc.stderr
