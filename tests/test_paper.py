"""`mixbench paper`: the quick protocol end to end, the verdicts following the numbers (made-up
results where R&B clearly wins, clearly loses, or is within noise), the seed calculation, and bad
input."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy import stats as scipy_stats

from mixbench.cli import cli
from mixbench.config import TrainConfig
from mixbench.engine.history import RoundRecord
from mixbench.engine.meter import OverheadReport
from mixbench.experiments.paper import protocol
from mixbench.experiments.paper.report import TaskResults, build
from mixbench.experiments.paper.runner import PaperSettings, TaskPlan
from mixbench.experiments.paper.stats import (
    NOT_MEASURED,
    NOT_REPRODUCED,
    NOT_SIGNIFICANT,
    REPRODUCED,
    row_stats,
    seeds_needed,
    verdicts,
)
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

SEEDS = range(5)
STRATIFIED = [2.00, 2.10, 2.20, 2.05, 2.15]     # a seed spread of ~0.08
NOISE = [0.004, -0.003, 0.002, -0.004, 0.001]   # per-seed noise, far below that spread


def fake(algo: str, seed: int, final: float, *, overhead_pct: float = 0.0, method: str = "original",
         k: int = 4, silhouette: float | None = None, retrieval: float | None = None) -> RunResult:
    """A finished run with what the paper report reads set by hand: its final loss (by original
    domains), overhead, domains (k, silhouette) and, for image-text, retrieval top-1; two rounds."""
    names = [f"d{i}" for i in range(k)]
    metrics_final = {"retrieval_top1": retrieval} if retrieval is not None else {}
    rounds = [RoundRecord(round_index=i, step=step, mixture=[1 / k] * k, counts=[2] * k, eval_losses=[loss] * k,
                          mean_eval_loss=loss, train_loss=loss, seconds=0.1, reference_eval_loss=loss,
                          reference_eval_losses=[loss], eval_metrics=metrics_final)
              for i, (step, loss) in enumerate([(5, final + 0.5), (10, final)])]
    report = OverheadReport(train_flops=1e6, overhead_flops=1e6 * overhead_pct / 100, paper_flops=0.0,
                            train_seconds=2.0, overhead_seconds=0.0, flops_by_label={}, seconds_by_label={})
    return RunResult(
        status="finished", error=None, started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:01:00+00:00",
        strategy=StrategyRecord(name=algo, params={}),
        task=TaskRecord(name="t", description="fake", source="tests", license="MIT", version="1", modality="text",
                        original_domains=4, num_domains=k),
        domains=DomainsRecord(method=method, names=names, k=k if method == "regroup" else None, silhouette=silhouette,
                              k_swept=list(range(2, 65)) if method == "regroup" else None),
        seed=seed, config=TrainConfig(steps=10, steps_per_round=5, seed=seed),
        environment=Environment(mixbench="0", torch="2", numpy="2", python="3", platform="test", device="cpu",
                                git_hash="unknown"),
        metrics=Metrics(initial_mean_eval_loss=5.0, final_mean_eval_loss=final, initial_eval_losses={},
                        final_eval_losses={}, initial_reference_eval_loss=5.0, final_reference_eval_loss=final,
                        final_reference_eval_losses={"d0": final}, reference_proportions={"d0": 1.0},
                        initial_eval_metrics={}, final_eval_metrics=metrics_final, final_domain_eval_metrics={},
                        steps_done=10, tokens_trained=100, num_params=10, train_seconds=2.0, eval_rows=[0]),
        overhead=Overhead.of(report, None), eval_proportions=[1 / k] * k,
        mixture=MixtureTrajectory(per_round=[[1 / k] * k, [1 / k] * k], final=[1 / k] * k), rounds=rounds,
        train_losses=[final] * 10)


def text_runs(rnb_shift: float, *, rnb_overhead: float = 0.01, regroup_shift: float = -0.1,
              k_losses=(2.3, 2.1, 2.0, 2.15, 2.3), silhouettes=(0.1, 0.3, 0.4, 0.25, 0.1)) -> dict:
    """Every row of a text task: R&B at stratified + `rnb_shift` (+ small noise), the adaptive
    baselines slightly worse than stratified at 10-30 % overhead, the k sweep at `k_losses` above
    the per-seed stratified losses."""
    def rows(algo, shift, **kw):
        return [fake(algo, s, STRATIFIED[s] + shift + NOISE[s], **kw) for s in SEEDS]

    runs = {"stratified": [fake("stratified", s, STRATIFIED[s]) for s in SEEDS],
            "skillit": rows("skillit", 0.05, overhead_pct=30.0), "aioli": rows("aioli", 0.04, overhead_pct=20.0),
            "dga": rows("dga", 0.03, overhead_pct=10.0),
            "rnb": rows("rnb", rnb_shift, overhead_pct=rnb_overhead, method="regroup", k=62, silhouette=0.3),
            "rnb-unbiased": rows("rnb", rnb_shift, overhead_pct=rnb_overhead, method="regroup", k=62, silhouette=0.3),
            "stratified-regroup": rows("stratified", regroup_shift, method="regroup", k=62, silhouette=0.3)}
    for k, loss, sil in zip(protocol.K_SWEEP, k_losses, silhouettes):
        runs[f"k{k}"] = [fake("stratified", s, loss + STRATIFIED[s] - 2.0 + NOISE[(s + 1) % 5], method="regroup", k=k,
                              silhouette=sil) for s in SEEDS]
    return runs


def text_plan(task: str = "champ") -> TaskPlan:
    return TaskPlan.of(protocol.TASKS[task], ood=False, ks=protocol.K_SWEEP)


def outcome(runs: dict, claim: str, plan: TaskPlan | None = None) -> str:
    plan = plan or text_plan()
    found = row_stats(runs, plan.rows, plan.baseline, plan.task.paper_dataset)
    by_claim = {v.claim: v for v in verdicts(plan.task.task, found, runs, plan.rows, plan.baseline, plan.ood,
                                             plan.task.modality)}
    return by_claim[claim].outcome


# -- verdicts follow the numbers -----------------------------------------------------------------------

def test_rnb_clearly_winning_at_small_overhead_is_reproduced():
    assert outcome(text_runs(-0.1), "rnb_best") == REPRODUCED


def test_rnb_clearly_losing_is_not_reproduced():
    assert outcome(text_runs(+0.1), "rnb_best") == NOT_REPRODUCED


def test_rnb_within_noise_is_not_significant():
    runs = text_runs(0.0)
    # R&B equal to stratified up to noise of both signs: no significant difference either way.
    runs["rnb"] = [fake("rnb", s, STRATIFIED[s] + 0.02 * (-1) ** s, overhead_pct=0.01, method="regroup", k=62)
                   for s in SEEDS]
    assert outcome(runs, "rnb_best") == NOT_SIGNIFICANT


def test_rnb_winning_at_too_much_overhead_is_not_reproduced():
    # 5 % is half of DGA's 10 %, far above the claimed 1/100 of it.
    assert outcome(text_runs(-0.1, rnb_overhead=5.0), "rnb_best") == NOT_REPRODUCED


def test_regroup_claim_follows_the_sign_and_the_noise():
    assert outcome(text_runs(0.0, regroup_shift=-0.1), "regroup") == REPRODUCED
    assert outcome(text_runs(0.0, regroup_shift=+0.1), "regroup") == NOT_REPRODUCED
    runs = text_runs(0.0)
    runs["stratified-regroup"] = [fake("stratified", s, STRATIFIED[s] + 0.02 * (-1) ** s, method="regroup", k=62)
                                  for s in SEEDS]
    assert outcome(runs, "regroup") == NOT_SIGNIFICANT


def test_regroup_claim_is_not_measured_on_an_out_of_domain_task():
    plan = TaskPlan.of(protocol.TASKS["evals-ood"], ood=True, ks=protocol.K_SWEEP)
    runs = text_runs(-0.1)
    runs["stratified-regroup"] = runs.pop("stratified")   # the baseline of an OOD task
    assert outcome(runs, "regroup", plan) == NOT_MEASURED
    assert outcome(runs, "rnb_best", plan) == REPRODUCED


def test_u_shape_and_monotone_sweeps():
    assert outcome(text_runs(0.0), "u_shape") == REPRODUCED
    # Falling with k to the end of the sweep (stratified at Regroup's own k = 62 is a point too).
    monotone = text_runs(0.0, k_losses=(2.4, 2.3, 2.2, 2.1, 2.0), regroup_shift=0.05)
    assert outcome(monotone, "u_shape") == NOT_REPRODUCED
    flat = text_runs(0.0, regroup_shift=0.0)
    for k in protocol.K_SWEEP:   # every k the same loss up to noise of both signs
        flat[f"k{k}"] = [fake("stratified", s, STRATIFIED[s] + 0.02 * (-1) ** (s + k), method="regroup", k=k,
                              silhouette=0.2) for s in SEEDS]
    assert outcome(flat, "u_shape") == NOT_SIGNIFICANT


def test_the_sweep_compares_k_values_on_the_seeds_all_of_them_finished():
    """Stratified at Regroup's k given 5 more seeds (paper --rows fig3) with far lower losses must
    not win the sweep on seeds the other k values never ran."""
    runs = text_runs(-0.1, regroup_shift=+0.2)   # k = 62 the worst point on seeds 0-4
    runs["stratified-regroup"] += [fake("stratified", s, 1.0, method="regroup", k=62, silhouette=0.3)
                                   for s in range(5, 10)]
    plan = text_plan()
    found = row_stats(runs, plan.rows, plan.baseline, plan.task.paper_dataset)
    u_shape = next(v for v in verdicts(plan.task.task, found, runs, plan.rows, plan.baseline, plan.ood,
                                       plan.task.modality) if v.claim == "u_shape")
    assert u_shape.measured.startswith("lowest loss at k = 16 ") and "5 paired seeds" in u_shape.measured
    assert found["stratified-regroup"].seeds == 10   # its own row keeps every seed


def test_silhouette_correlation_sign():
    # Losses (2.3, 2.1, 2.0, 2.15, 2.3), and the stratified-regroup point (k = 62, silhouette 0.3, loss
    # ≈ 2.0): a higher silhouette goes with a lower loss.
    assert outcome(text_runs(0.0), "silhouette") == REPRODUCED
    opposite = text_runs(0.0, silhouettes=(0.4, 0.2, 0.1, 0.25, 0.4), regroup_shift=0.3)
    assert outcome(opposite, "silhouette") == NOT_REPRODUCED


def test_image_claim_reads_retrieval_higher_is_better():
    plan = TaskPlan.of(protocol.TASKS["digits"], ood=False, ks=protocol.K_SWEEP)

    def runs(shift):
        out = {"stratified-regroup": [fake("stratified", s, 3.0, method="regroup", k=10, retrieval=0.30 + NOISE[s])
                                      for s in SEEDS]}
        out["rnb"] = [fake("rnb", s, 3.0, method="regroup", k=10, retrieval=0.30 + shift + NOISE[s] / 2) for s in SEEDS]
        return out

    assert outcome(runs(+0.05), "image", plan) == REPRODUCED
    assert outcome(runs(-0.05), "image", plan) == NOT_REPRODUCED


def test_the_report_states_the_verdict_the_numbers_give(tmp_path):
    settings = PaperSettings(tasks=("champ",), seeds=tuple(SEEDS), overrides={}, params={}, embedder="minilm",
                             ks=protocol.K_SWEEP)
    manifest = {"command": "mixbench paper --tasks champ", "settings": settings.to_manifest(),
        "protocol": {"k_sweep": list(protocol.K_SWEEP), "skillit_graph_fraction": 0.1, "aioli_rounds": 2,
                     "alpha": 0.05, "power": 0.8, "strategy_params": {}},
        "tasks": [text_plan().to_dict()], "budgets": {"champ": {"steps": 10}}, "versions": {"torch": "2"},
        "machine": {"cpus": 2}}
    for shift, expected in ((-0.1, "reproduced"), (+0.1, "not reproduced")):
        out = tmp_path / f"shift{shift}"
        md, html = build(manifest, [TaskResults(text_plan(), text_runs(shift))], out)
        text = md.read_text()
        line = next(ln for ln in text.splitlines() if ln.startswith("- **R&B ≤ the best baseline"))
        assert f"**{expected}**" in line
        # The paper's figure for the matching row (S1-59K, Table 2) is beside ours, as a relative change.
        assert "-0.90 % (0.7449 vs 0.7517; Table 2, S1-59K" in text
        assert "not in the paper for S1-59K" in text   # Skill-It, Aioli, DGA: the paper ran none on S1
        for image in re.findall(r"!\[.*\]\((.*)\)", text):
            assert (out / image).is_file(), image
        assert "<table>" in html.read_text()
    # An out-of-domain task: every row on regrouped domains, no Fig. 3 ablation, Fig. 3's regroup column
    # as the paper's figures.
    ood = TaskPlan.of(protocol.TASKS["evals-ood"], ood=True, ks=protocol.K_SWEEP)
    runs = text_runs(-0.1)
    runs["stratified-regroup"] = runs.pop("stratified")
    md, _ = build({**manifest, "tasks": [ood.to_dict()]}, [TaskResults(ood, runs)], tmp_path / "ood")
    text = md.read_text()
    assert "### Fig. 3 ablation" not in text and "Out-of-domain" in text
    assert "+2.65 % (2.947 vs 2.871; Fig. 3, Sup-NatInst test, regroup" in text   # Aioli on regrouped domains
    assert "Regroup helps stratified** — evals-ood (Sup-NatInst test): not measured" in text


def test_the_report_shows_how_far_each_mixture_left_uniform(tmp_path):
    """A strategy that starves domains shows it: its largest p and effective number of domains."""
    runs = text_runs(-0.1)
    for r in runs["skillit"]:
        r.mixture = MixtureTrajectory(per_round=[[0.25] * 4, [0.7, 0.1, 0.1, 0.1]], final=[0.7, 0.1, 0.1, 0.1])
    settings = PaperSettings(tasks=("champ",), seeds=tuple(SEEDS), overrides={}, params={}, embedder="minilm",
                             ks=protocol.K_SWEEP)
    manifest = {"command": "mixbench paper --tasks champ", "settings": settings.to_manifest(),
                "protocol": {"k_sweep": list(protocol.K_SWEEP), "skillit_graph_fraction": 0.1, "aioli_rounds": 2,
                             "alpha": 0.05, "power": 0.8, "strategy_params": {}},
                "tasks": [text_plan().to_dict()], "budgets": {"champ": {"steps": 10}}, "versions": {},
                "machine": {}}
    text = build(manifest, [TaskResults(text_plan(), runs)], tmp_path)[0].read_text()
    effective = math.exp(-(0.7 * math.log(0.7) + 3 * 0.1 * math.log(0.1)))   # 2.56 of 4
    assert f"| Skill-It (original domains) | 4 | 0.700 (uniform 0.250) | {effective:.1f} (64 % of m) | 5 |" in text
    assert "| DGA (original domains) | 4 | 0.250 (uniform 0.250) | 4.0 (100 % of m) | 5 |" in text


# -- the seed calculation ------------------------------------------------------------------------------

def test_seeds_needed_matches_the_noncentral_t_power():
    # Standardised effect 1: a paired t-test needs 10 pairs for 80 % power at α = 0.05 (two-sided).
    assert seeds_needed(1.0, 1.0) == 10
    assert seeds_needed(0.5, 1.0) == 34
    n = seeds_needed(0.01, 0.03)
    df, shift = n - 1, 0.01 / (0.03 / math.sqrt(n))
    critical = scipy_stats.t.ppf(0.975, df)

    def power(df, shift):
        return scipy_stats.nct.sf(critical, df, shift) + scipy_stats.nct.cdf(-critical, df, shift)

    assert power(df, shift) >= 0.8
    assert power(df - 1, 0.01 / (0.03 / math.sqrt(n - 1))) < 0.8   # the smallest such n
    assert seeds_needed(0.0, 1.0) is None and seeds_needed(0.1, math.nan) is None


# -- the command -----------------------------------------------------------------------------------------

def test_paper_quick_writes_the_report_and_reuses_its_cells(run_cli, tmp_path):
    first = run_cli("paper", "--quick", "--no-mlflow", "--no-progress", "--out", "out")
    assert first.returncode == 0, first.stderr[-3000:]
    report = tmp_path / "out" / "report"
    md = (report / "paper.md").read_text()
    for heading in ("## Verdicts", "## How this was run", "## synthetic (paper: no counterpart)",
                    "### Table 1: strategies against stratified", "### Fig. 3 ablation",
                    "### Fig. 2 sweep: stratified at fixed k", "## digits (paper: DataComp)",
                    "### Image-text (paper Table 3)", "### Mixtures", "## Seeds needed to detect the paper's effects"):
        assert heading in md, heading
    for claim in protocol.CLAIMS:   # a verdict line per claim
        assert f"- **{claim.title}** —" in md, claim.title
    assert "k chosen by silhouette (R&B's Regroup): **k = " in md
    assert "mixbench paper --quick --no-mlflow --no-progress --out out" in md   # the exact command
    assert "nothing tuned per task" in md
    assert "embedder `tfidf` (tfidf-" in md   # with its identity: the options that made the domains
    for image in re.findall(r"!\[.*\]\((.*)\)", md):
        assert (report / image).is_file(), image
    assert (report / "paper.html").is_file()
    manifest = json.loads((tmp_path / "out" / "paper.json").read_text())
    assert manifest["failed_cells"] == [] and manifest["versions"]["torch"]
    # A second run reuses every finished cell.
    again = run_cli("paper", "--quick", "--no-mlflow", "--no-progress", "--out", "out")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "to run" in again.stderr and not re.search(r"[1-9]\d* to run", again.stderr)
    assert "commands under the same settings" not in (report / "paper.md").read_text()   # one command, run twice
    # A regrouped cell another embedder made is left out of the report, and said to be.
    cell = tmp_path / "out/main/synthetic/rnb/regroup/seed1.json"
    result = json.loads(cell.read_text())
    result["domains"]["embedder"] = "minilm-all-MiniLM-L6-v2-64tok"
    cell.write_text(json.dumps(result))
    assert run_cli("paper", "--report-only", "--out", "out").returncode == 0
    md = (report / "paper.md").read_text()
    assert "Left out: 1 regrouped cell(s)" in md and "rnb seed 1 (minilm-all-MiniLM-L6-v2-64tok)" in md


def test_rows_runs_only_those_rows_and_the_report_keeps_the_earlier_command(run_cli, tmp_path):
    """More seeds for some rows: --rows runs them (and the baseline) only; the report lists both
    commands and reads each row over the seeds it has. Other settings with --rows are refused
    before anything is written, so one report never mixes two protocols."""
    base = ("paper", "--quick", "--tasks", "synthetic", "--no-mlflow", "--no-progress", "--out", "out")
    assert run_cli(*base, "--seeds", "0").returncode == 0
    more = run_cli(*base, "--seeds", "0,1", "--rows", "rnb,fig2")
    assert more.returncode == 0, more.stderr[-3000:]
    seed1 = {str(p.relative_to(tmp_path / "out").parent) for p in (tmp_path / "out").glob("*/synthetic/*/*/seed1.json")}
    assert seed1 == {"main/synthetic/stratified/original", "main/synthetic/rnb/regroup",
                     *(f"k{k}/synthetic/stratified/regroup" for k in (2, 4, 8))}
    md = (tmp_path / "out/report/paper.md").read_text()
    assert "2 commands under the same settings" in md
    assert "--out out --seeds 0\n" in md and "--out out --seeds 0,1 --rows rnb,fig2\n" in md
    rows = (line.split(" | ") for line in md.splitlines() if line.startswith("| "))
    cells = {}
    for row in rows:   # Table 1 is the first table to name a row
        cells.setdefault(row[0][2:], row)
    rnb, skillit = cells["R&B (Regroup, then Balance)"], cells["Skill-It (original domains)"]
    assert rnb[2] == "2" and " ± " in rnb[3]
    assert skillit[2] == "1" and " ± " not in skillit[3]   # one seed: no spread to show
    manifest = (tmp_path / "out/paper.json").read_text()
    refused = run_cli(*base, "--seeds", "0,1", "--rows", "rnb", "--steps", "10")
    assert refused.returncode == 2 and refused.stderr.count("error:") == 1 and "other overrides" in refused.stderr
    assert (tmp_path / "out/paper.json").read_text() == manifest
    unknown = run_cli(*base, "--rows", "rnbx")
    assert unknown.returncode == 2 and "no row or section rnbx" in unknown.stderr


@pytest.mark.slow
def test_paper_jobs_runs_cells_side_by_side_with_the_same_results(run_cli, tmp_path):
    """--jobs 2: each row group's cells in two processes at a time, each cell the result one
    process at a time gives (fixed seeds: the same final loss to the last digit). One thread each
    way: a cell's threads are its share of the machine's, and another thread count reduces in
    another order (differences at 1e-8)."""
    args = ("paper", "--quick", "--tasks", "synthetic", "--no-mlflow", "--no-progress")
    one_thread = {"OMP_NUM_THREADS": "1"}
    assert run_cli(*args, "--out", "one", env=one_thread).returncode == 0
    two = run_cli(*args, "--jobs", "2", "--out", "two", env=one_thread)
    assert two.returncode == 0 and "2 at a time" in two.stderr, two.stderr[-3000:]
    cells = sorted((tmp_path / "one").glob("*/synthetic/*/*/seed*.json"))
    assert cells
    for cell in cells:
        twin = tmp_path / "two" / cell.relative_to(tmp_path / "one")
        ran = [json.loads(p.read_text())["metrics"]["final_reference_eval_loss"] for p in (cell, twin)]
        assert ran[0] == ran[1], cell


@pytest.mark.parametrize("args, message", [
    (["--tasks", "no-such-task"], "no-such-task"),
    (["--tasks", "dolly", "--seeds", "0"], "not ready"),
    (["--quick", "--seeds", ""], "--seeds is empty"),
    (["--quick", "--seeds", "a,b"], "--seeds must be comma-separated integers"),
    (["--quick", "--param", "nosuch.eta=1"], "nosuch"),
    (["--quick", "--jobs", "0"], "--jobs"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, monkeypatch):
    monkeypatch.setenv("MIXBENCH_DOLLY", str(tmp_path / "missing"))   # Dolly's data: not here
    result = CliRunner().invoke(cli, ["paper", "--no-mlflow", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_an_unwritable_out_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = CliRunner().invoke(cli, ["paper", "--quick", "--no-mlflow", "--out", str(blocker / "out")])
    assert result.exit_code == 2
    assert result.stderr.count("error:") == 1 and "cannot write" in result.stderr


def test_report_only_without_a_run_says_so(tmp_path):
    result = CliRunner().invoke(cli, ["paper", "--report-only", "--out", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "run `mixbench paper --out" in result.stderr


def test_rows_that_share_a_results_path_get_their_own_folder():
    """R&B with either Gram, and stratified at each k, would otherwise overwrite each other's cells."""
    for task in ("champ", "evals-ood", "digits"):
        plan = TaskPlan.of(protocol.TASKS[task], ood=task == "evals-ood", ks=protocol.K_SWEEP)
        places = [(r.grid, r.algo, r.domains.split(":")[0]) for r in plan.rows]
        assert len(places) == len(set(places)), task
        assert len({r.key for r in plan.rows}) == len(plan.rows)


def test_every_paper_figure_is_the_paper_s_own_number():
    # Relative changes are computed from the printed numbers, e.g. Table 1 Sup-NatInst R&B 2.381 vs 2.591.
    figure = protocol.paper_figure("Sup-NatInst", "rnb")
    assert figure.relative_change == pytest.approx((2.381 - 2.591) / 2.591)
    assert protocol.paper_figure("S1-59K", "skillit") is None   # the paper ran no Skill-It on S1
    assert protocol.paper_figure(None, "rnb") is None
    # DataComp: the m nearest to the run's k.
    assert "m = 50" in protocol.paper_figure("DataComp", "rnb", k=40).where
    assert np.isclose(protocol.DATACOMP[50][1][1] / protocol.DATACOMP[50][1][0] - 1, 0.0327, atol=5e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_the_gpu_paper_cell_script_refuses_in_one_line_without_cuda(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "paper_gpu.sh"
    result = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True,
                            env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHON": sys.executable})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["paper_gpu: no CUDA device visible to torch; run it on a machine "
                                                  "with a GPU"]
    assert not (tmp_path / "out").exists()   # nothing written
