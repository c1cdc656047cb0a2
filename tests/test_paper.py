"""`mixbench paper`: the quick protocol end to end, the verdicts following the numbers (made-up
results where R&B clearly wins, clearly loses, or is within noise) after the Holm adjustment, the
pre-registration (registered seeds, exploratory ones apart, verdicts kept as first looked at), the
seed calculation, and bad input."""

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
from mixbench.experiments.paper.report import TaskResults, build, look
from mixbench.experiments.paper.runner import PaperSettings, TaskPlan
from mixbench.experiments.paper.stats import row_stats, seeds_needed
from mixbench.experiments.paper.verdicts import (
    NOT_MEASURED,
    NOT_REPRODUCED,
    NOT_SIGNIFICANT,
    REPRODUCED,
    decide,
    findings,
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


def task_verdicts(runs: dict, plan: TaskPlan | None = None) -> dict:
    """The task's verdicts by claim, Holm-adjusted over the task's tests (a report of one task)."""
    plan = plan or text_plan()
    found = row_stats(runs, plan.rows, plan.baseline, plan.task.paper_dataset)
    return {v.claim: v for v in decide(findings(plan.task.task, found, runs, plan.rows, plan.baseline, plan.ood,
                                                plan.task.modality))}


def outcome(runs: dict, claim: str, plan: TaskPlan | None = None) -> str:
    return task_verdicts(runs, plan)[claim].outcome


def manifest_for(plan: TaskPlan, seeds=tuple(SEEDS)) -> dict:
    """A paper.json for `plan` whose every row registered `seeds` (the made-up runs' seeds)."""
    settings = PaperSettings(tasks=(plan.task.task,), seeds=None, overrides={}, params={}, embedder="minilm",
                             ks=protocol.K_SWEEP)
    registration = plan.registration(settings, {"steps": 10}).to_dict()
    for row in registration["rows"]:
        row["seeds"] = list(seeds)
    return {"command": f"mixbench paper --tasks {plan.task.task}", "settings": settings.to_manifest(),
            "selected": {plan.task.task: [r.key for r in plan.rows]}, "finished_at": "2026-01-01T00:02:00+00:00",
            "registration": {plan.task.task: registration}, "tasks": [plan.to_dict()],
            "budgets": {plan.task.task: {"steps": 10}}, "versions": {"torch": "2"}, "machine": {"cpus": 2}}


def looked(manifest: dict, tasks: list) -> dict:
    return {**manifest, "confirmatory": look(manifest, tasks)}


# -- verdicts follow the numbers -----------------------------------------------------------------------

def test_rnb_clearly_winning_at_small_overhead_is_reproduced():
    assert outcome(text_runs(-0.1), "rnb_best") == REPRODUCED


def test_rnb_clearly_losing_is_not_reproduced():
    # Worse than the best baseline by far more than the 1 % margin.
    assert outcome(text_runs(+0.1), "rnb_best") == NOT_REPRODUCED


def test_rnb_within_the_margin_of_the_best_baseline_is_reproduced():
    """Non-inferiority: R&B 0.3 % behind stratified (well inside the 1 % margin, with little noise)."""
    runs = text_runs(0.0)
    runs["rnb"] = [fake("rnb", s, STRATIFIED[s] * 1.003 + NOISE[s] / 4, overhead_pct=0.01, method="regroup", k=62)
                   for s in SEEDS]
    verdict = task_verdicts(runs)["rnb_best"]
    assert verdict.outcome == REPRODUCED and "best baseline (stratified)" in verdict.measured


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
    # Falling with k to the end of the sweep.
    monotone = text_runs(0.0, k_losses=(2.4, 2.3, 2.2, 2.1, 2.0), regroup_shift=0.05)
    assert outcome(monotone, "u_shape") == NOT_REPRODUCED
    flat = text_runs(0.0, regroup_shift=0.0)
    for k in protocol.K_SWEEP:   # every k the same loss up to noise of both signs
        flat[f"k{k}"] = [fake("stratified", s, STRATIFIED[s] + 0.02 * (-1) ** (s + k), method="regroup", k=k,
                              silhouette=0.2) for s in SEEDS]
    assert outcome(flat, "u_shape") == NOT_SIGNIFICANT


def test_the_sweep_compares_k_values_on_the_seeds_all_of_them_finished():
    """One k given 5 more seeds with far lower losses must not win the sweep on seeds the other k
    values never ran; Regroup's own choice (each seed its own k) is no point of the sweep."""
    runs = text_runs(-0.1, regroup_shift=-1.0)   # stratified at Regroup's k far below every fixed k
    runs["k64"] += [fake("stratified", s, 1.0, method="regroup", k=64, silhouette=0.1) for s in range(5, 10)]
    plan = text_plan()
    found = row_stats(runs, plan.rows, plan.baseline, plan.task.paper_dataset)
    u_shape = task_verdicts(runs)["u_shape"]
    assert "lowest mean loss at k = 16 " in u_shape.measured and "5 paired seeds" in u_shape.measured
    assert found["k64"].seeds == 10   # its own row keeps every seed


def test_silhouette_correlation_is_spearman_over_the_registered_k_values():
    # Losses (2.3, 2.1, 2.0, 2.15, 2.3) against silhouettes (0.1, 0.3, 0.4, 0.25, 0.1): ρ = −1. Its exact p
    # counts the orderings of the 5 losses as extreme as this one: itself and the one that swaps the two
    # tied losses (ties on both sides leave no ordering at ρ = +1), 2 of 5! = 120.
    verdict = task_verdicts(text_runs(0.0))["silhouette"]
    assert verdict.outcome == REPRODUCED
    [test] = verdict.tests
    assert test.effect == pytest.approx(-1.0) and test.p == pytest.approx(2 / 120)
    opposite = text_runs(0.0, silhouettes=(0.4, 0.2, 0.1, 0.25, 0.4))
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
    manifest = manifest_for(text_plan())
    for shift, expected in ((-0.1, "reproduced"), (+0.1, "not reproduced")):
        out = tmp_path / f"shift{shift}"
        tasks = [TaskResults(text_plan(), text_runs(shift))]
        md, html = build(looked(manifest, tasks), tasks, out)
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
    tasks = [TaskResults(ood, runs)]
    md, _ = build(looked(manifest_for(ood), tasks), tasks, tmp_path / "ood")
    text = md.read_text()
    assert "### Fig. 3 ablation" not in text and "Out-of-domain" in text
    assert "+2.65 % (2.947 vs 2.871; Fig. 3, Sup-NatInst test, regroup" in text   # Aioli on regrouped domains
    assert "Regroup helps stratified** — evals-ood (Sup-NatInst test): not measured" in text


def test_the_report_shows_how_far_each_mixture_left_uniform(tmp_path):
    """A strategy that starves domains shows it: its largest p and effective number of domains."""
    runs = text_runs(-0.1)
    for r in runs["skillit"]:
        r.mixture = MixtureTrajectory(per_round=[[0.25] * 4, [0.7, 0.1, 0.1, 0.1]], final=[0.7, 0.1, 0.1, 0.1])
    tasks = [TaskResults(text_plan(), runs)]
    text = build(looked(manifest_for(text_plan()), tasks), tasks, tmp_path)[0].read_text()
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
    assert "k chosen by silhouette (R&B's Regroup, each seed its own clustering): **k = " in md
    assert "mixbench paper --quick --no-mlflow --no-progress --out out" in md   # the exact command
    assert "## Pre-registration" in md and "Holm–Bonferroni" in md and "## Exploratory" not in md
    assert "### Balance: R&B against stratified on the same regrouped domains" in md
    seeds = (report / "paper_seeds.csv").read_text().splitlines()
    assert seeds[0].startswith("task,row,algo,seed,confirmatory,status,final_loss")
    assert len(seeds) == 1 + 2 * (10 + 3)   # every row of synthetic (10) and digits (3) at seeds 0 and 1
    assert "nothing tuned per task" in md
    assert "embedder `tfidf` (tfidf-" in md   # with its identity: the options that made the domains
    for image in re.findall(r"!\[.*\]\((.*)\)", md):
        assert (report / image).is_file(), image
    assert (report / "paper.html").is_file()
    manifest = json.loads((tmp_path / "out" / "paper.json").read_text())
    assert manifest["failed_cells"] == [] and manifest["versions"]["torch"] and manifest["digest"]
    assert manifest["git"]["hash"] and manifest["data"]["synthetic"]["version"]
    # The k-rule study reads the sweep and the R&B cells' Regroup curves of the same folder.
    study = run_cli("rule-study", "synthetic=out", "--to", "study")
    assert study.returncode == 0, study.stderr[-3000:]
    assert "| silhouette |" in (tmp_path / "study/rule_study.md").read_text()
    assert (tmp_path / "study/rule_study.csv").read_text().count("\nsynthetic,") == 6 * 2   # six rules, two seeds
    # A second run reuses every finished cell.
    again = run_cli("paper", "--quick", "--no-mlflow", "--no-progress", "--out", "out")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "to run" in again.stderr and not re.search(r"[1-9]\d* to run", again.stderr)
    assert "1 command(s) under the same protocol" in (report / "paper.md").read_text()   # one command, run twice
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
    assert "2 command(s) under the same protocol" in md
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
    # R&B and its baseline (stratified) at the quick seeds: four cells each way, two at a time.
    args = ("paper", "--quick", "--tasks", "synthetic", "--rows", "rnb", "--no-mlflow", "--no-progress")
    one_thread = {"OMP_NUM_THREADS": "1"}
    assert run_cli(*args, "--out", "one", env=one_thread).returncode == 0
    two = run_cli(*args, "--jobs", "2", "--out", "two", env=one_thread)
    assert two.returncode == 0 and "2 at a time" in two.stderr, two.stderr[-3000:]
    cells = sorted((tmp_path / "one").glob("*/synthetic/*/*/seed*.json"))
    assert len(cells) == 4
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


# -- pre-registration and the statistics --------------------------------------------------------------------

def test_holm_and_the_sign_flip_test_give_the_hand_computed_values():
    from mixbench.experiments.paper.significance import holm, sign_flip_p

    # p sorted: 0.005, 0.01, 0.03, 0.04 → 4·0.005, 3·0.01, 2·0.03, 1·0.04 made monotone: 0.02, 0.03, 0.06, 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.2, math.nan, 0.01]) == pytest.approx([0.2, math.nan, 0.02], nan_ok=True)   # NaN not counted
    # Differences (1, −2, 3, 4), sum 6: of the 16 sign patterns, ±(1, 2, 3, 4), ±(−1, 2, 3, 4) and
    # ±(1, −2, 3, 4) reach |sum| ≥ 6.
    assert sign_flip_p([1, -2, 3, 4]) == pytest.approx(6 / 16)
    assert sign_flip_p([0.5, 0.4, 0.6]) == pytest.approx(2 / 8)   # three seeds: never below 0.25
    assert math.isnan(sign_flip_p([1.0]))


def test_a_verdict_is_decided_on_the_holm_adjusted_p():
    """Five tests in the family: a raw p of 0.03 that is the largest of them stays below 0.05, but the
    same p among smaller ones at rank 4 of 5 is multiplied by 2 and is no longer significant."""
    from mixbench.experiments.paper.verdicts import Finding, Test

    def finding(p, claim="regroup"):
        return Finding(claim, "t", (Test("x", p, -0.1, -1),))

    alone = decide([finding(0.001), finding(0.002), finding(0.003), finding(0.004), finding(0.03)])
    assert alone[-1].outcome == REPRODUCED and alone[-1].tests[0].adjusted == pytest.approx(0.03)
    crowded = decide([finding(0.001), finding(0.002), finding(0.003), finding(0.03), finding(0.5)])
    assert crowded[3].tests[0].adjusted == pytest.approx(0.06) and crowded[3].outcome == NOT_SIGNIFICANT
    assert "raw" not in crowded[3].measured and "Holm-adjusted 0.06" in crowded[3].measured


def test_confirmatory_verdicts_are_kept_as_first_looked_at(tmp_path):
    """Once looked at, a task's verdicts are printed as they were, whatever its cells say later."""
    plan = text_plan()
    winning = [TaskResults(plan, text_runs(-0.1))]
    manifest = looked(manifest_for(plan), winning)
    losing = [TaskResults(plan, text_runs(+0.1))]
    assert look(manifest, losing) == manifest["confirmatory"]
    text = build(manifest, losing, tmp_path)[0].read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("- **R&B ≤ the best baseline"))
    assert "**reproduced**" in line
    # Registered cells missing: no look, and the report says the verdicts are pending.
    partial = {**manifest_for(plan, seeds=range(6)), "finished_at": None}
    assert look(partial, winning) == {}
    assert "**pending**" in build({**partial, "confirmatory": {}}, winning, tmp_path / "pending")[0].read_text()


def test_more_seeds_on_the_same_out_land_in_the_exploratory_section(run_cli, tmp_path):
    base = ("paper", "--quick", "--tasks", "synthetic", "--rows", "stratified", "--no-mlflow", "--no-progress",
            "--out", "out")
    def verdicts(md: str) -> str:
        return md.split("## Verdicts (confirmatory)")[1].split("What the paper reports")[0]

    assert run_cli(*base).returncode == 0
    before = verdicts((tmp_path / "out/report/paper.md").read_text())
    more = run_cli(*base, "--seeds", "0,1,2")
    assert more.returncode == 0, more.stderr[-3000:]
    md = (tmp_path / "out/report/paper.md").read_text()
    assert "## Exploratory: seeds added beyond the registration" in md
    assert "by 1 command(s)" in md and "seeds added: stratified 2 (1)" in md
    assert verdicts(md) == before   # the confirmatory verdicts as first looked at
    rows = [line.split(",") for line in (tmp_path / "out/report/paper_seeds.csv").read_text().splitlines()[1:]]
    assert {(r[1], r[3], r[4]) for r in rows} == {("stratified", "0", "True"), ("stratified", "1", "True"),
                                                  ("stratified", "2", "False")}


def test_a_damaged_manifest_is_refused_in_one_line(run_cli, tmp_path):
    base = ("paper", "--quick", "--tasks", "synthetic", "--rows", "stratified", "--no-mlflow", "--no-progress",
            "--out", "out")
    assert run_cli(*base).returncode == 0
    path = tmp_path / "out/paper.json"
    manifest = json.loads(path.read_text())
    manifest["budgets"]["synthetic"]["steps"] = 30   # one number changed by hand: the report would trust it
    path.write_text(json.dumps(manifest))
    for args in (("paper", "--report-only", "--out", "out"), base):
        refused = run_cli(*args)
        assert refused.returncode == 2 and refused.stderr.count("error:") == 1, refused.stderr
        assert "paper.json is damaged" in refused.stderr
    assert json.loads(path.read_text()) == manifest   # nothing written over it
