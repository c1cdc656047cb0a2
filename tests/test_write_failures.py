"""A write that fails costs a run as little as it can: a checkpoint that cannot be written, however
the serializer fails (torch.save raises RuntimeError on a full disk or past a file-size limit, not
OSError), is one warning, the previous checkpoint stays as it was, no temporary file is left, and
training goes on; a results file that cannot be written is one `error:` line saying what was kept.

The failures are real: the process's file-size limit (RLIMIT_FSIZE; Python ignores SIGXFSZ, so a
write past the limit fails with EFBIG, as on a full disk), lowered around the write in this
process or set for a `mixbench run` subprocess.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import subprocess

from mixbench.tasks.synthetic import Synthetic

from mixbench import registry
from mixbench.engine.checkpoint import CheckpointPlan, load_checkpoint
from mixbench.engine.trainer import train
from mixbench.experiments.checkpoints import what_was_kept
from tests.conftest import mixbench_command

TINY = {"steps": 20, "steps_per_round": 10, "batch_size": 4, "seq_len": 32, "n_layer": 1, "n_embd": 32,
        "device": "cpu"}
TINY_CLI = ["--task", "synthetic", "--domains", "original", "--steps", "20", "--steps-per-round", "10",
            "--batch-size", "4", "--seq-len", "32", "--n-layer", "1", "--n-embd", "32", "--device", "cpu",
            "--no-mlflow", "--no-progress"]


@contextlib.contextmanager
def file_size_limit(limit: int):
    """No file this process writes may grow past `limit` bytes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_checkpoint_that_cannot_be_written_is_one_warning_and_training_goes_on(tmp_path, caplog):
    task = Synthetic()
    data, cfg = task.load(), task.budget.override(**TINY)
    path = tmp_path / "seed0.ckpt"
    plan = CheckpointPlan(path=path, every=5, keep=2)
    train(data, registry.strategies.create("rnb"), cfg, progress=False, checkpoints=plan)
    previous, size = path.read_bytes(), path.stat().st_size
    assert plan.written == [5, 10, 15, 20]

    again = CheckpointPlan(path=path, every=5, keep=2)
    with caplog.at_level(logging.WARNING, logger="mixbench"), file_size_limit(size // 2):
        history = train(data, registry.strategies.create("rnb"), cfg, progress=False, checkpoints=again)
    assert len(history.train_losses) == 20 and len(history.rounds) == 2   # trained to the end
    warnings = [r.getMessage() for r in caplog.records if "could not write the checkpoint" in r.getMessage()]
    assert len(warnings) == 1, warnings   # four writes failed, one warning
    assert f"{path} (File too large)" in warnings[0] and "the run goes on" in warnings[0]
    assert again.written == []
    assert path.read_bytes() == previous and load_checkpoint(path).step == 20   # the previous one, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0.ckpt", "seed0.ckpt.1"]   # no temporary file


def test_a_results_file_that_cannot_be_written_is_one_line_saying_what_was_kept(tmp_path):
    """A file-size limit under the results JSON's size (and the checkpoint's): exit 2, one
    `error:` line naming the file, the reason and what is left; no traceback."""
    limit = 3 * 1024

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    proc = subprocess.run(mixbench_command() + ["run", "--algo", "stratified", *TINY_CLI, "--out", "out"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, preexec_fn=limited)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: cannot write out/synthetic/stratified/original/seed0.json: File too large; "
                      "nothing of this run was kept"], proc.stderr
    assert not list((tmp_path / "out").rglob("*.tmp")) and not list((tmp_path / "out").rglob(".*"))


def test_what_was_kept_names_the_checkpoint_and_the_mlflow_run(tmp_path):
    class Run:
        run_id = "abc123"

    plan = CheckpointPlan(path=tmp_path / "seed0.ckpt")
    assert what_was_kept(plan) == "nothing of this run was kept"
    plan.written.extend([10, 20])
    assert what_was_kept(plan, Run()) == (f"kept: its checkpoint {tmp_path / 'seed0.ckpt'} of step 20 (--resume "
                                          f"continues from it) and its MLflow run abc123 (parameters and metrics; "
                                          f"marked FAILED)")
