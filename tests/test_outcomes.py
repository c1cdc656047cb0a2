"""The library speaks Python: `run` returns the finished run's RunResult and prints nothing; a run
that ends early raises RunInterrupted or RunDiverged carrying its saved result; a grid records a
diverged cell and goes on, and raises GridInterrupted carrying the grid so far. The command line
alone turns these into exit codes (2, 3, 130), each with the lines a user saw before."""

from __future__ import annotations

import json
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner

from mixbench import registry
from mixbench.cli.exit_codes import exit_codes
from mixbench.errors import MixbenchError
from mixbench.experiments.compare import run_grid
from mixbench.experiments.outcomes import GridInterrupted, Interrupted, RunDiverged, RunInterrupted
from mixbench.experiments.results import RunResult
from mixbench.experiments.run import run
from mixbench.experiments.settings import GridSettings, RunSettings, TrackingSettings
from mixbench.strategy import MixingStrategy
from tests.test_trainer import _StopAfter

TINY = {"steps": 20, "steps_per_round": 10, "batch_size": 4, "seq_len": 32, "n_layer": 1, "n_embd": 32,
        "device": "cpu"}
UNTRACKED = TrackingSettings(enabled=False)


@pytest.fixture
def stop_registered(monkeypatch):
    """`_StopAfter` registered as the strategy "stop" (a run names its strategy), for this test only."""
    strategies = registry.Registry("strategy", registry.strategies.group, MixingStrategy)
    strategies.register("stop", _StopAfter)   # beside the built-ins, which registering loads first
    monkeypatch.setattr(registry, "strategies", strategies)


def settings(tmp_path, algo: str = "stratified", params: dict | None = None, **overrides) -> RunSettings:
    return RunSettings.resolve(task="synthetic", algo=algo, params=params, overrides={**TINY, **overrides},
                               domains="original", out_dir=tmp_path, tracking=UNTRACKED, progress=False)


def test_a_finished_run_returns_its_result_and_prints_nothing(tmp_path, capsys):
    ran = settings(tmp_path)
    result = run(ran)
    assert isinstance(result, RunResult) and result.finished and result.metrics.steps_done == 20
    assert result.saved_to.path == ran.result_path and result.saved_to.mlflow is None
    assert RunResult.load(ran.result_path) == result
    assert capsys.readouterr().out == ""   # the summary is the command line's to print


def test_an_interrupted_run_raises_with_what_it_kept(tmp_path, stop_registered):
    ran = settings(tmp_path, algo="stop", params={"at": 0})
    with pytest.raises(RunInterrupted) as stopped:
        run(ran)
    assert isinstance(stopped.value, KeyboardInterrupt)   # code that stops on Ctrl-C stops on it
    assert stopped.value.result.status == "interrupted" and stopped.value.result.metrics.steps_done == 10
    assert json.loads(ran.result_path.read_text())["status"] == "interrupted"


def test_a_crashed_run_raises_its_error_after_saving_its_record(tmp_path, stop_registered):
    ran = settings(tmp_path, algo="stop", params={"at": 0, "error": "RuntimeError"})
    with pytest.raises(RuntimeError, match="stop"):
        run(ran)
    saved = json.loads(ran.result_path.read_text())
    assert saved["status"] == "failed" and saved["error"] == "RuntimeError: stop"
    assert saved["metrics"]["steps_done"] == 10


def test_a_diverged_run_raises_with_its_result(tmp_path):
    ran = settings(tmp_path, lr=1e6)
    with pytest.raises(RunDiverged, match="training diverged at step") as diverged:
        run(ran)
    assert diverged.value.result.diverged and RunResult.load(ran.result_path).diverged


def test_a_grid_records_its_diverged_cells_and_goes_on(tmp_path, capsys):
    grid = GridSettings(task="synthetic", algos=("stratified", "static"), seeds=(0,), domains=("original",),
                        overrides={**TINY, "lr": 1e6}, out_dir=tmp_path, tracking=UNTRACKED, progress=False)
    ran = run_grid(grid)
    assert ran.failed == [] and [r.status for r in ran.results()] == ["diverged", "diverged"]
    assert capsys.readouterr().err.count("diverged (see its results file); going on") == 2


def test_an_interrupted_grid_raises_with_the_grid_so_far(tmp_path, stop_registered, capsys):
    grid = GridSettings(task="synthetic", algos=("stratified", "stop"), seeds=(0,), domains=("original",),
                        overrides=TINY, params={"stop": {"at": 0}}, out_dir=tmp_path, tracking=UNTRACKED,
                        progress=False)
    with pytest.raises(GridInterrupted) as stopped:
        run_grid(grid)
    cells = [cell.result_path for cell in grid.cells()]
    assert stopped.value.result.paths == cells and stopped.value.result.failed == []
    assert [RunResult.load(path).status for path in cells] == ["finished", "interrupted"]
    assert "compare interrupted: finished cells are kept" in capsys.readouterr().err


@click.command()
@click.argument("outcome")
@exit_codes
def _ends(outcome):
    if outcome == "bad input":
        raise MixbenchError("a bad input")
    if outcome == "diverged":
        raise RunDiverged(SimpleNamespace(error="training diverged at step 3"))
    if outcome == "interrupted":
        raise Interrupted(None)


@pytest.mark.parametrize("outcome, code, stderr", [
    ("done", 0, ""), ("bad input", 2, "error: a bad input\n"), ("diverged", 3, ""), ("interrupted", 130, "")])
def test_the_command_line_turns_outcomes_into_exit_codes(outcome, code, stderr):
    ended = CliRunner().invoke(_ends, [outcome])
    assert (ended.exit_code, ended.stderr) == (code, stderr), ended.output
