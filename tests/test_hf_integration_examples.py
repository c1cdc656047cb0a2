"""The examples run as a user runs them: `python examples/<name>.py`, from a fresh folder, with
the installed package (shortened to 40 steps here; the documented defaults take about 30 s each)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
pytest.importorskip("datasets")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, cwd: Path, *args: str) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, str(EXAMPLES / name), "--steps", "40", "--steps-per-round", "10", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_the_trainer_example_runs_and_prints_the_mixture_of_every_round(tmp_path):
    out = run_example("hf_trainer_rnb.py", tmp_path)
    lines = [line for line in out.splitlines() if line.strip()[:2].isdigit()]
    assert [int(line.split()[0]) for line in lines] == [10, 20, 30, 40]
    assert "per-domain eval loss at the end" in out
    assert (tmp_path / "runs" / "hf_trainer_rnb").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["paper", "unbiased"])
def test_the_plain_loop_example_runs(tmp_path, estimator):
    out = run_example("torch_loop_rnb.py", tmp_path, "--gram-estimator", estimator)
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("step")] == \
        ["step   10", "step   20", "step   30", "step   40"]
