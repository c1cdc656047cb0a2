"""Bad input is one `error:` line and exit 2, never a traceback; files are written as any file is.

Seeds out of every generator's range (run, compare, regroup, theory), devices that do not exist,
model folders with a corrupt or pickled checkpoint, report folders that cannot be written,
results files that are not results, an output path taken by a folder; and the quiet
`--no-progress` and the file modes of what mixbench writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mixbench.config import SEED_MAX, ConfigError, TrainConfig
from mixbench.errors import MixbenchError
from mixbench.experiments.results import RunResult
from mixbench.storage.atomic import UnwritableOutput, write_json
from mixbench.storage.cache import save_npz

pytest.importorskip("transformers")
from tests.test_hf_model import hf_dir  # noqa: E402, F401 - the tiny HF checkpoint, built offline

QUICK_RUN = ("--task", "synthetic", "--steps", "2", "--steps-per-round", "1", "--no-mlflow", "--no-progress")


def assert_one_error_line(proc, *expected: str) -> None:
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for text in expected:
        assert text in errors[0], errors[0]


# ---------------------------------------------------------------- seeds: one check, every command


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1, 10**20])
def test_train_config_refuses_a_seed_no_generator_takes(seed):
    with pytest.raises(ConfigError, match=f"seed must be an integer from 0 to {SEED_MAX}"):
        TrainConfig(seed=seed)
    assert TrainConfig(seed=SEED_MAX).seed == SEED_MAX


@pytest.mark.parametrize("args", [
    ("run", "--algo", "stratified", *QUICK_RUN, "--seed", "-1"),
    ("run", "--algo", "stratified", *QUICK_RUN, "--seed", str(SEED_MAX + 1)),
    ("compare", "--algos", "stratified", *QUICK_RUN, "--seeds", "0,-3"),
    ("regroup", "--task", "synthetic", "--embedder", "tfidf", "--k", "2:3", "--no-mlflow", "--seed", "-1"),
    ("regroup", "--task", "synthetic", "--embedder", "tfidf", "--k", "2:3", "--no-mlflow", "--seed", str(2**40)),
    ("theory", "--quick", "--seed", "-1"),
    ("theory", "--quick", "--seed", str(SEED_MAX + 1)),
], ids=["run-negative", "run-too-large", "compare-negative", "regroup-negative", "regroup-too-large",
        "theory-negative", "theory-too-large"])
def test_every_seed_option_gives_one_line(run_cli, args):
    assert_one_error_line(run_cli(*args), "seed must be an integer from 0 to")


# ---------------------------------------------------------------- devices and model folders


@pytest.mark.parametrize("device", ["cudax", "cuda:-1", "gpu"])
def test_an_unknown_device_is_one_line(run_cli, device):
    assert_one_error_line(run_cli("run", "--algo", "stratified", *QUICK_RUN, "--device", device), "device")


def test_a_cuda_device_that_is_not_there_is_refused(monkeypatch):
    import torch

    from mixbench.engine.trainer import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(MixbenchError, match="no such CUDA device"):
        resolve_device("cuda:7")


def _damaged_copy(source: Path, tmp_path: Path, damage) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(source, copy)
    damage(copy)
    return copy


def _truncate(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _garbage(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(os.urandom(4096))


def _pickled_code(folder: Path) -> None:
    import torch

    class Payload:   # unpickling this would run a command
        def __reduce__(self):
            return (os.system, (f"touch {folder / 'PWNED'}",))

    (folder / "model.safetensors").unlink()
    torch.save({"weight": Payload()}, folder / "pytorch_model.bin")


def _bad_config(folder: Path) -> None:
    (folder / "config.json").write_text('{"model_type": "gpt2", ')


@pytest.mark.parametrize("damage", [_truncate, _garbage, _pickled_code, _bad_config])
def test_a_damaged_model_folder_is_a_clear_error(hf_dir, tmp_path, damage):  # noqa: F811
    from mixbench.models.hf import load_causal_lm

    folder = _damaged_copy(hf_dir, tmp_path, damage)
    with pytest.raises(MixbenchError, match="cannot load an HF causal LM from"):
        load_causal_lm(folder)
    assert not (folder / "PWNED").exists()


def test_a_pickled_checkpoint_is_one_line_from_the_cli(hf_dir, tmp_path, run_cli):  # noqa: F811
    folder = _damaged_copy(hf_dir, tmp_path, _pickled_code)
    proc = run_cli("run", "--algo", "stratified", *QUICK_RUN, "--seq-len", "16", "--model", str(folder))
    assert_one_error_line(proc, "pickled checkpoint", "refused")
    assert "weights_only` set to `False`" not in proc.stderr   # torch's advice to turn the safety off
    assert not (folder / "PWNED").exists()


# ---------------------------------------------------------------- where results go


@pytest.fixture
def results_dir(run_cli, tmp_path) -> Path:
    proc = run_cli("run", "--algo", "stratified", *QUICK_RUN, "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "runs"


def test_report_out_at_a_file_or_a_taken_name_is_one_line(run_cli, results_dir, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me\n")
    assert_one_error_line(run_cli("report", str(results_dir), "--out", str(a_file)), str(a_file))
    assert a_file.read_text() == "keep me\n"
    taken = tmp_path / "taken"
    (taken / "report.md").mkdir(parents=True)
    assert_one_error_line(run_cli("report", str(results_dir), "--out", str(taken)), "report.md", "folder")
    plot_taken = tmp_path / "plot-taken"
    (plot_taken / "eval_loss.png").mkdir(parents=True)
    assert_one_error_line(run_cli("report", str(results_dir), "--out", str(plot_taken)), "eval_loss.png", "folder")
    # A folder whose name ends in .json among the results is not a results file.
    (results_dir / "synthetic" / "odd.json").mkdir()
    assert run_cli("report", str(results_dir), "--out", str(tmp_path / "fine")).returncode == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_report_out_in_an_unwritable_folder_is_one_line(run_cli, results_dir, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert_one_error_line(run_cli("report", str(results_dir), "--out", str(locked / "report")), "cannot write")


@pytest.mark.parametrize("text", [
    "[1, 2]", "42", '"text"', "null",
    '{"schema_version": "1", "status": "finished", "rounds": []}',
    '{"schema_version": 1, "status": "finished", "rounds": [], "metrics": 5}',
    '{"schema_version": 1, "status": "finished", "rounds": 7, "metrics": {}}',
])
def test_a_results_file_that_is_not_a_result_is_named(tmp_path, text):
    path = tmp_path / "seed0.json"
    path.write_text(text)
    with pytest.raises(MixbenchError, match="seed0.json"):
        RunResult.load(path)


def test_a_results_file_that_is_not_an_object_is_one_line_in_report(run_cli, results_dir):
    (results_dir / "synthetic" / "broken.json").write_text('{"schema_version": 1, "status": "finished", '
                                                           '"rounds": [], "metrics": 5}')
    assert_one_error_line(run_cli("report", str(results_dir)), "broken.json", "malformed")


def test_a_folder_where_the_results_file_goes_is_one_line(run_cli, tmp_path):
    taken = tmp_path / "runs" / "synthetic" / "stratified" / "original" / "seed0.json"
    (taken / "inside").mkdir(parents=True)
    proc = run_cli("run", "--algo", "stratified", *QUICK_RUN, "--out", str(tmp_path / "runs"))
    assert_one_error_line(proc, "seed0.json", "folder")
    assert (taken / "inside").is_dir()   # nothing of the user's is removed


def test_writing_over_a_folder_is_a_mixbench_error(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(UnwritableOutput, match="folder"):
        write_json(tmp_path / "out.json", {"a": 1})
    assert issubclass(UnwritableOutput, MixbenchError) and issubclass(UnwritableOutput, OSError)


# ---------------------------------------------------------------- quiet and permissions


def test_no_progress_also_silences_model_loading(hf_dir, run_cli, tmp_path):  # noqa: F811
    proc = run_cli("run", "--algo", "stratified", *QUICK_RUN, "--seq-len", "16", "--model", str(hf_dir),
                   "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    assert "Loading weights" not in proc.stderr and "it/s]" not in proc.stderr, proc.stderr


def test_no_progress_also_silences_bars_libraries_draw_with_plain_tqdm():
    """transformers converts SmolLM2's GGUF under a plain tqdm bar, outside its own switch."""
    code = ("from mixbench.cli.options import quiet_libraries; quiet_libraries()\n"
            "from tqdm.auto import tqdm\n"
            "for _ in tqdm(range(3), desc='Converting'): pass\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"})
    assert proc.returncode == 0 and "Converting" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("quiet", [True, False])
def test_no_progress_also_silences_the_image_decoding_bar(tmp_path, quiet):
    """A task decodes its pictures with progress=None (it knows nothing of the command's options):
    many pictures draw a bar, but not under --no-progress, even with tqdm imported already."""
    code = ("import tqdm.auto\n"
            "from PIL import Image\n"
            "from mixbench.cli.options import quiet_libraries\n"
            "from mixbench.data.images import PROGRESS_FROM, load_images\n"
            f"{'quiet_libraries()' if quiet else 'pass'}\n"
            f"Image.new('RGB', (4, 4), 'red').save({str(tmp_path / 'a.png')!r})\n"
            f"load_images([{str(tmp_path / 'a.png')!r}] * PROGRESS_FROM, 4, what='fixture', workers=1)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"})
    assert proc.returncode == 0, proc.stderr
    assert ("decoding fixture" in proc.stderr) is not quiet, proc.stderr


@pytest.mark.slow   # creating a fresh MLflow database takes about 10 s
def test_no_progress_also_silences_mlflow_info_lines(run_cli, tmp_path):
    """A fresh MLflow database: its schema migrations and run creation log at INFO."""
    proc = run_cli("run", "--algo", "stratified", *[a for a in QUICK_RUN if a != "--no-mlflow"],
                   "--out", str(tmp_path / "runs"), env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/fresh.db"})
    assert proc.returncode == 0, proc.stderr
    chatter = [line for line in proc.stderr.splitlines() if "INFO" in line or "alembic" in line]
    assert not chatter, proc.stderr


def test_results_and_cache_files_get_the_umask_mode(tmp_path):
    write_json(tmp_path / "result.json", {"a": 1})
    save_npz(tmp_path / "cache" / "entry.npz", x=np.zeros(3))
    (tmp_path / "plain").write_text("")   # what the umask gives any new file (0644 under umask 022)
    expected = (tmp_path / "plain").stat().st_mode & 0o777
    for path in (tmp_path / "result.json", tmp_path / "cache" / "entry.npz"):
        assert path.stat().st_mode & 0o777 == expected, f"{path}: {oct(path.stat().st_mode)}"
    assert json.loads((tmp_path / "result.json").read_text()) == {"a": 1}
