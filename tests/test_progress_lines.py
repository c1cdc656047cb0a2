"""Issue 29 (1, 4): a long stage says before it starts what it does, how much, about how long (from
a rate measured here) and where its result is cached; one labelled bar per stage; its seconds in
the run's summary and results; and Regroup says why it chose its k."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from mixbench.embedders.tfidf import Tfidf
from mixbench.tasks.synthetic import Synthetic

from mixbench.embedder import report_progress
from mixbench.regroup import regroup
from mixbench.regroup.embeddings import embed_with_cache
from mixbench.regroup.stages import about, bars_allowed
from mixbench.regroup.why_k import why_k


@pytest.fixture(scope="module")
def synthetic():
    task = Synthetic(num_domains=4, examples_per_domain=40)
    return task.load(), task.info()


class ReportingTfidf(Tfidf):
    """TF-IDF that notes, in one shared list, each embed() call and the progress it reports."""

    events: list = []

    def embed(self, texts, progress=False):
        ReportingTfidf.events.append(("embed", len(texts), progress))
        report_progress(0.5)
        return super().embed(texts, progress)


def test_a_first_embedding_is_announced_before_it_starts(synthetic, tmp_path, caplog):
    """The acceptance check: on an empty cache, a line naming the number of texts, an estimate and
    the cache folder comes before the texts are embedded (only the pilot that times the rate is
    embedded before it)."""
    data, info = synthetic
    train = [f"{e.prompt}\n\n{e.response}" for e in data.train]
    evaluation = [f"{e.prompt}\n\n{e.response}" for e in data.eval]
    ReportingTfidf.events = []

    class Recorder(logging.Handler):
        def emit(self, record):
            ReportingTfidf.events.append(("log", record.getMessage()))

    recorder = Recorder(level=logging.INFO)
    logger = logging.getLogger("mixbench")
    logger.addHandler(recorder)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        *_, cached, base = embed_with_cache(info, ReportingTfidf(), train, evaluation, progress=True)
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(old_level)
    assert not cached
    logs = [i for i, e in enumerate(ReportingTfidf.events) if e[0] == "log" and e[1].startswith("embedding ")]
    assert len(logs) == 1, ReportingTfidf.events
    line = ReportingTfidf.events[logs[0]][1]
    assert f"embedding {len(train) + len(evaluation):,} texts" in line
    assert ("about " in line or "under a second" in line) and "texts/s, measured on" in line
    assert f"cached in {tmp_path / 'cache' / 'embeddings'}" in line and str(base.parent) in line
    calls = [e for e in ReportingTfidf.events if e[0] == "embed"]
    before = [e for e in ReportingTfidf.events[:logs[0]] if e[0] == "embed"]
    assert sum(n for _, n, _ in before) <= 1 + 32                 # the pilot only
    assert sum(n for _, n, _ in calls[len(before):]) == len(set(train)) + len(set(evaluation))
    assert not any(shown for *_, shown in calls)                  # the embedder draws no bar of its own


def test_a_cached_embedding_is_not_announced(synthetic, caplog):
    data, info = synthetic
    texts = [f"{e.prompt}\n\n{e.response}" for e in data.train]
    embed_with_cache(info, Tfidf(), texts, texts[:5], progress=False)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mixbench"):
        assert embed_with_cache(info, Tfidf(), texts, texts[:5], progress=False)[2]
    assert not [r for r in caplog.records if r.getMessage().startswith("embedding ")]


def test_the_sweep_is_announced_with_an_estimate_and_regroup_records_stage_seconds(synthetic, caplog):
    data, info = synthetic
    with caplog.at_level(logging.INFO, logger="mixbench"):
        grouping = regroup(data, info, Tfidf(), [2, 3, 4, 5, 6], seed=0)
    lines = [r.getMessage() for r in caplog.records if "k-means of" in r.getMessage()]
    assert len(lines) == 1, lines
    assert f"k-means of {len(data.train)} training texts of {info.name} over k = 2..6 (5 values" in lines[0]
    assert "k = 2 took" in lines[0] and "k = 6 took" in lines[0] and "more" in lines[0]
    assert "sweep-" in lines[0] and "cached in" in lines[0]
    assert set(grouping.seconds) == {"embedding", "k_sweep", "assignment"}
    assert all(s >= 0 for s in grouping.seconds.values())
    again = regroup(data, info, Tfidf(), [2, 3, 4, 5, 6], seed=0)   # everything from the cache
    assert again.seconds == {} and np.array_equal(again.train_labels, grouping.train_labels)


def test_estimates_read_as_estimates():
    assert about(0.2) == "under a second"
    assert about(7) == "about 7 s" and about(44) == "about 40 s"
    assert about(600) == "about 10 min" and about(3 * 3600) == "about 3.0 h"


def test_tqdm_disable_turns_every_bar_off(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert bars_allowed(True) and not bars_allowed(False)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not bars_allowed(True)
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert bars_allowed(True)


def test_why_k_names_the_rule_the_range_the_curve_and_notes_a_drift():
    sweep = [{"k": k, "silhouette": 0.1 + 0.01 * k, "inertia": 100.0 / k, "smallest": 3.0, "chosen": k == 63}
             for k in range(2, 65)]
    lines = why_k(sweep, "silhouette", 63, original_domains=4)
    assert lines[0].startswith("k = 63 chosen by silhouette over k = 2..64 (63 values): the highest mean silhouette")
    assert "silhouette around it: 62: 0.7200, [63: 0.7300], 64: 0.7400" in lines[1]
    assert any("sits at the top of the range swept (up to 64)" in line for line in lines)
    assert any("more than 4× the task's 4 original domains" in line for line in lines)
    quiet = [dict(row, chosen=row["k"] == 4) for row in sweep[:10]]
    assert not [line for line in why_k(quiet, "silhouette", 4, original_domains=4) if "note:" in line]


def test_a_regrouped_run_prints_why_and_its_stage_times(run_cli, tmp_path):
    proc = run_cli("run", "--algo", "stratified", "--task", "synthetic", "--domains", "regroup:2:6", "--embedder",
                   "tfidf", "--steps", "4", "--steps-per-round", "2", "--device", "cpu", "--no-mlflow", "--no-progress",
                   "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    announced = next(line for line in err.splitlines() if line.startswith("INFO embedding "))
    assert "texts" in announced and "cached in" in announced and str(tmp_path / "cache") in announced
    assert err.index("INFO embedding ") < err.index("INFO k-means of") < err.index("regrouped synthetic into")
    assert "chosen by silhouette over k = 2..6 (5 values)" in err
    time_line = next(line for line in proc.stdout.splitlines() if line.startswith("time: "))
    for stage in ("loading", "embedding", "k sweep", "assignment", "training", "evaluation"):
        assert stage in time_line, time_line
    result = json.loads((tmp_path / "out/synthetic/stratified/regroup/seed0.json").read_text())
    stages = result["metrics"]["stage_seconds"]
    assert {"loading", "embedding", "k_sweep", "assignment", "training", "evaluation"} <= set(stages)
    assert result["domains"]["regroup_seconds"] >= stages["embedding"]   # the old fields stay as they were
