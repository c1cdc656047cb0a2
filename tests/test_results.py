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


@pytest.mark.parametrize("edit, field", [
    (lambda p: p["metrics"].__setitem__("final_reference_eval_loss", "2.1"),
     "metrics.final_reference_eval_loss is '2.1' (a string), not a number"),
    (lambda p: p["metrics"].__setitem__("final_reference_eval_loss", float("-inf")),
     "metrics.final_reference_eval_loss is -Infinity, not a finite number"),
    (lambda p: p["rounds"][1].__setitem__("reference_eval_loss", [2.0]),
     "rounds[1].reference_eval_loss is a list, not a number"),
    (lambda p: p["metrics"]["final_reference_eval_losses"].__setitem__("d0", None) or
     p["metrics"]["final_eval_losses"].__setitem__("d0", True),
     "metrics.final_eval_losses.d0 is True (a boolean), not a number"),
    (lambda p: p.__setitem__("seed", 1.5), "seed is 1.5, not an integer"),
    (lambda p: p["task"].__setitem__("version", 3), "task.version is 3, not a string"),
    (lambda p: p.__setitem__("train_losses", {"0": 3.0}), "train_losses is an object, not a list"),
])
def test_a_field_of_the_wrong_type_or_not_finite_is_one_line_naming_file_and_field(tmp_path, edit, field):
    """What a results file holds is checked against the schema before anything reads it: before,
    a string loss made numpy raise in `compare`'s and `report`'s tables, and -Infinity (which
    Python's json reads) was reported as a result."""
    payload = finished_result("rnb", 0, 1.9).to_json()
    edit(payload)
    path = tmp_path / "seed0.json"
    path.write_text(json.dumps(payload))   # -inf is written as -Infinity, as a hand-edited file would have it
    with pytest.raises(MixbenchError) as info:
        RunResult.load(path)
    assert str(info.value) == f"{path}: malformed results: {field}"


def test_report_and_compare_name_a_malformed_results_file(tmp_path, run_cli, capsys):
    from mixbench.experiments.compare import CellSettings, done

    good = finished_result("stratified", 0, 2.0)
    path = tmp_path / "runs/synthetic/stratified/original/seed0.json"
    good.save(path)
    text = path.read_text()
    path.write_text(text.replace('"final_reference_eval_loss": 2.0', '"final_reference_eval_loss": "2.0"'))
    proc = run_cli("report", str(tmp_path / "runs"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {path}: malformed results: metrics.final_reference_eval_loss is '2.0' (a string), not a number"]
    # compare reruns such a cell, saying why, rather than summarising it
    settings = CellSettings(config=good.config.to_dict(), params={}, embedder=None, task_version="1")
    assert not done(path, settings, keep=False)
    assert "metrics.final_reference_eval_loss is '2.0'" in capsys.readouterr().err
