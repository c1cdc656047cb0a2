"""The tox `repro` check: a fixed-seed rerun matches the golden file, and a change to training that
changes the numbers makes it fail."""

import json
from pathlib import Path

from mixbench.experiments import repro

GOLDEN = Path(__file__).resolve().parents[1] / "results" / "repro_golden.json"


def test_rerun_matches_golden_and_a_training_change_fails(monkeypatch):
    golden = json.loads(GOLDEN.read_text())
    assert golden["environment"]["torch"] and golden["overrides"] == repro.OVERRIDES
    assert repro.compare(repro.measure(), golden) == []
    monkeypatch.setitem(repro.OVERRIDES, "lr", 2e-3)  # a change to training: different numbers
    problems = repro.compare(repro.measure(), golden)
    assert problems and any("final_mean_eval_loss" in p for p in problems)
