"""The clustering is random too: a regrouped run clusters with its own seed (recorded in its results
under `domains`), so the spread over seeds includes the clustering's; a finished compare cell
clustered with another seed is rerun, never reused."""

from __future__ import annotations

import json

import pytest

from mixbench.experiments.results import RunResult

RUN = ("--task", "synthetic", "--domains", "regroup:2:6", "--embedder", "tfidf", "--steps", "4",
       "--steps-per-round", "2", "--seq-len", "16", "--n-layer", "1", "--n-embd", "16", "--n-head", "1",
       "--batch-size", "4", "--eval-per-domain", "2", "--device", "cpu", "--no-mlflow", "--no-progress")


@pytest.mark.slow
def test_two_seeds_of_a_regrouped_run_record_their_own_clustering_seeds(run_cli, tmp_path):
    for seed in (0, 1):
        done = run_cli("run", "--algo", "rnb", *RUN, "--seed", str(seed), "--out", "out")
        assert done.returncode == 0, done.stderr[-2000:]
    seeds = [RunResult.load(tmp_path / f"out/synthetic/rnb/regroup/seed{s}.json").domains.clustering_seed
             for s in (0, 1)]
    assert seeds == [0, 1]


def test_a_compare_cell_clustered_with_another_seed_is_rerun(run_cli, tmp_path):
    args = ("compare", "--algos", "stratified", "--seeds", "1", *RUN, "--out", "out")
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    cell = tmp_path / "out/synthetic/stratified/regroup/seed1.json"
    assert RunResult.load(cell).domains.clustering_seed == 1
    made_before = json.loads(cell.read_text())
    made_before["domains"]["clustering_seed"] = 0   # as every cell was clustered before seeds followed the run's
    cell.write_text(json.dumps(made_before))
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "ran with other settings (clustering seed)" in again.stderr
    assert RunResult.load(cell).domains.clustering_seed == 1
