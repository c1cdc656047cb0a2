"""The tox `repro` check (`mixbench repro check`): a fixed-seed rerun matches the golden file, and a
change to training that changes the numbers makes it fail."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mixbench.cli import cli
from mixbench.experiments import repro

GOLDEN = Path(__file__).resolve().parents[1] / "results" / "repro_golden.json"


def test_rerun_matches_golden_and_a_training_change_fails(monkeypatch):
    golden = json.loads(GOLDEN.read_text())
    assert golden["environment"]["torch"] and golden["overrides"] == repro.OVERRIDES
    assert repro.compare(repro.measure(), golden) == []
    monkeypatch.setitem(repro.OVERRIDES, "lr", 2e-3)  # a change to training: different numbers
    problems = repro.compare(repro.measure(), golden)
    assert problems and any("final_mean_eval_loss" in p for p in problems)


def test_the_repro_command_writes_a_golden_file_and_checks_against_it(tmp_path):
    """`mixbench repro update` then `check`: exit 0 and "repro: ok"; a changed number: MISMATCH and exit 1.
    (Independent of the committed golden file, which changes with training.)"""
    golden = tmp_path / "golden.json"
    written = CliRunner().invoke(cli, ["repro", "update", str(golden)])
    assert written.exit_code == 0 and f"wrote {golden}" in written.stdout, written.output
    checked = CliRunner().invoke(cli, ["repro", "check", str(golden)])
    assert checked.exit_code == 0 and "repro: ok (0 differences" in checked.stdout, checked.output
    record = json.loads(golden.read_text())
    record["results"]["rnb"]["final_mean_eval_loss"] += 1.0
    golden.write_text(json.dumps(record))
    changed = CliRunner().invoke(cli, ["repro", "check", str(golden)])
    assert changed.exit_code == 1 and "MISMATCH rnb.final_mean_eval_loss[0]" in changed.stdout, changed.output
    assert "repro: FAILED (1 differences" in changed.stdout


@pytest.mark.parametrize("args", [["check", "missing.json"], ["check", "garbage.json"], ["verify", "x.json"], []])
def test_a_bad_repro_command_is_one_line_and_exit_2(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.json").write_text("{not json")
    result = CliRunner().invoke(cli, ["repro", *args])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    if args and args[0] == "check":
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(f"error: cannot read golden file {args[1]}: "), result.stderr


def test_the_module_spelling_runs_the_repro_command_rather_than_nothing(tmp_path):
    """`python -m mixbench.experiments.repro check GOLDEN` (the spelling older notes use) is the
    `mixbench repro` command, errors included, not an import that exits 0 having checked nothing."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "mixbench.experiments.repro", "check", str(tmp_path / "none.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "cannot read golden file" in done.stderr
