"""How `compare --jobs N` reads the end of a cell: from the results JSON the cell's own process
wrote (its status), else from whether the process succeeded and its log's last `error:` line;
never from what its exit code means, and never from an earlier run's results at the same path."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from mixbench.experiments.parallel_cells import _FileStamp, _outcome, _Running
from tests.test_compare import finished_result


def ended(tmp_path: Path, returncode: int, *, earlier: str | None = None, writes: str | None = None,
          error: str | None = None, log: str = "") -> _Running:
    """A cell that ended with `returncode`, after an earlier run left `earlier` results at its path
    (None: nothing), having itself written `writes` results (None: none) and `log`."""
    results, log_path = tmp_path / "seed0.json", tmp_path / "seed0.log"
    if earlier is not None:
        finished_result("rnb", 0, 9.0, status=earlier).save(results)
    cell = _Running("rnb · original · seed 0", results, log_path, SimpleNamespace(returncode=returncode),
                    _FileStamp.of(results))
    if writes is not None:
        result = finished_result("rnb", 0, 2.0, status=writes)
        result.error = error or result.error
        result.save(results)
    log_path.write_text(log)
    return cell


def test_a_finished_cell_gives_its_final_loss(tmp_path):
    line, failure = _outcome(ended(tmp_path, 0, earlier="interrupted", writes="finished"), stopping=False)
    assert line.startswith("finished, final loss 2.0000 (") and failure is None


def test_an_earlier_run_s_results_are_not_this_cell_s(tmp_path):
    """A finished file from before, and a cell refused before it wrote anything: failed, by its log."""
    cell = ended(tmp_path, 2, earlier="finished", log="compare-cell ...\nerror: --tap-memory 0.001 MiB is too small\n")
    line, failure = _outcome(cell, stopping=False)
    assert failure == "error: --tap-memory 0.001 MiB is too small"
    assert line == f"failed: error: --tap-memory 0.001 MiB is too small (log: {cell.log})"


@pytest.mark.parametrize("returncode", [3, 1, 0])
def test_a_diverged_cell_is_recorded_not_failed_whatever_its_exit(tmp_path, returncode):
    cell = ended(tmp_path, returncode, writes="diverged")
    assert _outcome(cell, stopping=False) == (f"diverged (see {cell.results})", None)


def test_an_interrupted_cell_is_said_to_be_resumable(tmp_path):
    saved = ended(tmp_path / "a", 130, writes="interrupted")
    assert _outcome(saved, stopping=False) == (
        "interrupted: its record and checkpoint are kept; rerun compare to resume it", "interrupted")
    # Stopped by the grid before it wrote anything (a resume still reading its checkpoint, say).
    unsaved = ended(tmp_path / "b", -2, earlier="interrupted")
    assert _outcome(unsaved, stopping=True)[1] == "interrupted"
    assert _outcome(unsaved, stopping=False)[1] == "exit code -2"


def test_a_crashed_cell_gives_the_error_its_results_record(tmp_path):
    log = "Traceback (most recent call last):\n  File ...\nRuntimeError: boom\n"
    line, failure = _outcome(ended(tmp_path, 1, writes="failed", error="RuntimeError: boom", log=log), stopping=False)
    assert failure == "RuntimeError: boom" and line.startswith("failed: RuntimeError: boom (log: ")


def test_a_cell_that_succeeded_without_results_is_a_failure(tmp_path):
    line, failure = _outcome(ended(tmp_path, 0), stopping=False)
    assert line == "finished, but its results cannot be read (it wrote none)" and failure == "it wrote none"


def test_a_killed_cell_without_a_word_gives_its_exit_status(tmp_path):
    line, failure = _outcome(ended(tmp_path, -9), stopping=False)
    assert failure == "exit code -9"
