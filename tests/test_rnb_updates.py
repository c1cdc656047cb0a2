"""R&B with its defaults on fine-grained regrouped domains: Balance updates every round.

With its own regrouping on `synthetic` (k = 63 domains, 80 examples per round) some domain draws
no example in every round; before the partial update no round ever updated and the final mixture
was uniform."""

from __future__ import annotations

import json


def test_rnb_with_its_defaults_updates_every_round_on_synthetic(run_cli, tmp_path):
    done = run_cli("run", "--algo", "rnb", "--task", "synthetic", "--no-mlflow", "--no-progress",
                   "--out", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    result = json.loads(next((tmp_path / "runs").rglob("seed0.json")).read_text())
    assert result["domains"]["method"] == "regroup" and result["domains"]["k"] > 40
    rounds = result["rounds"]
    assert any(0 in r["counts"] for r in rounds)          # fine-grained: some domain undrawn each round
    mixtures = [r["mixture"] for r in rounds]     # what each round sampled from: p_0, then each update's
    assert all(a != b for a, b in zip(mixtures, mixtures[1:]))   # every update (after each round but the last) moved p
    updates = result["strategy"]["extras"]["updates"]
    assert updates["kept"] == 0 and updates["full"] + updates["partial"] == len(rounds) - 1
