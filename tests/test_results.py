"""RunResult: typed in memory, the same JSON layout on disk; files of older layouts still read."""

import json
import math

import pytest

from mixbench.errors import MixbenchError
from mixbench.experiments.results import SCHEMA_VERSION, RunResult
from tests.test_compare import finished_result


def test_json_round_trip_gives_the_same_result(tmp_path):
    result = finished_result("rnb", 2, 1.9, rounds=((5, 3.0), (10, 2.05), (20, 1.9)))
    path = tmp_path / "seed2.json"
    result.save(path)
    assert RunResult.load(path) == result
    assert RunResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_json_layout_is_what_readers_of_the_files_expect():
    payload = finished_result("rnb", 0, 1.9).to_json()
    assert next(iter(payload)) == "schema_version" and payload["schema_version"] == SCHEMA_VERSION
    assert payload["status"] == "finished" and payload["strategy"] == {"name": "rnb", "params": {}, "extras": {}}
    assert payload["metrics"]["final_mean_eval_loss"] == 1.9
    assert payload["rounds"][-1]["mean_eval_loss"] == 2.0 and payload["rounds"][-1]["step"] == 20
    # The overhead's derived percentages are written out, for readers without mixbench.
    assert payload["overhead"]["flops_pct"] == pytest.approx(1.0)
    assert payload["overhead"]["seconds_pct"] == pytest.approx(0.5)
    assert payload["overhead"]["paper_formula_flops"] is None
    # Regroup's fields are left out for a run on original domains.
    assert payload["domains"] == {"method": "original", "names": ["d0"]}
    assert payload["config"]["steps"] == 20 and payload["config"]["seed"] == 0


def test_nan_is_written_as_null_and_read_back_as_nan():
    result = finished_result("rnb", 0, float("nan"), rounds=((5, 3.0), (10, float("nan"))), status="failed")
    payload = result.to_json()
    json.dumps(payload, allow_nan=False)
    assert payload["metrics"]["final_mean_eval_loss"] is None and payload["rounds"][1]["mean_eval_loss"] is None
    again = RunResult.from_json(payload)
    assert math.isnan(again.final_loss) and math.isnan(again.rounds[1].reference_eval_loss)
    assert not again.finished and again.error == "stopped"


def test_a_file_from_before_the_reference_loss_is_compared_on_its_own_loss():
    payload = finished_result("rnb", 0, 1.9, rounds=((5, 3.0), (10, 1.9))).to_json()
    for key in ("initial_reference_eval_loss", "final_reference_eval_loss", "final_reference_eval_losses",
                "reference_proportions", "initial_eval_metrics", "final_eval_metrics", "final_domain_eval_metrics",
                "eval_rows"):
        del payload["metrics"][key]
    for record in payload["rounds"]:
        del record["reference_eval_loss"], record["reference_eval_losses"]
    del payload["strategy"]["extras"]
    old = RunResult.from_json(payload)
    assert old.final_loss == 1.9 and old.metrics.final_reference_eval_losses == {"d0": 1.9}
    assert old.steps_to_reach(3.0) == 5 and old.steps_to_reach(2.0) == 10
    assert "final_reference_eval_loss" not in payload["metrics"]   # the caller's dict is not changed


@pytest.mark.parametrize("text, message", [
    ("{not json", "cannot read"),
    ('{"status": "finished"}', "not a mixbench run result"),
    ('{"schema_version": 99, "status": "finished", "rounds": []}', "written by a newer mixbench"),
    ('{"schema_version": 1, "status": "finished", "rounds": []}', "malformed results"),
])
def test_a_file_that_is_not_a_result_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "seed0.json"
    path.write_text(text)
    with pytest.raises(MixbenchError, match=message) as info:
        RunResult.load(path)
    assert str(path) in str(info.value)
