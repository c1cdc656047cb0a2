"""A resume that cannot be is refused in one line naming why (exit 2 on the command line), and
leaves every file it found as it was: no checkpoint, a damaged one, one written in another
format, one made by another strategy, with other hyperparameters, other training settings,
another seed or on other domains. `compare`, which resumes when it can, says why it cannot and
starts the cell over."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
from mixbench.tasks.synthetic import Synthetic

from mixbench.engine.checkpoint import load_checkpoint
from mixbench.errors import MixbenchError
from mixbench.experiments.checkpoints import REQUIRED, WHEN_POSSIBLE, check_domains, checkpoint_plan
from mixbench.experiments.results import RunResult
from mixbench.experiments.run import run
from mixbench.experiments.settings import RunSettings, TrackingSettings
from mixbench.task import TaskData

TINY = {"steps": 20, "steps_per_round": 10, "batch_size": 4, "seq_len": 32, "n_layer": 1, "n_embd": 32,
        "device": "cpu"}
TINY_CLI = ["--task", "synthetic", "--domains", "original", "--steps", "20", "--steps-per-round", "10",
            "--batch-size", "4", "--seq-len", "32", "--n-layer", "1", "--n-embd", "32", "--device", "cpu",
            "--no-mlflow", "--no-progress"]
RNB = "synthetic/rnb/original"


def settings(out: Path, algo: str = "rnb", params: dict | None = None, resume: str = REQUIRED,
             **config) -> RunSettings:
    return RunSettings.resolve(task="synthetic", algo=algo, params=params, overrides={**TINY, **config},
                               domains="original", out_dir=out, tracking=TrackingSettings(enabled=False),
                               progress=False, resume=resume)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """An output folder with one finished rnb run: its results JSON and its checkpoint."""
    out = tmp_path_factory.mktemp("finished")
    assert run(settings(out, resume="never")).finished
    assert (out / RNB / "seed0.json").exists() and (out / RNB / "seed0.ckpt").exists()
    return out


@pytest.fixture
def out(finished, tmp_path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(finished, copy)
    return copy


def assert_one_error_line(proc, *expected: str) -> None:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(text in errors[0] for text in expected), proc.stderr


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def damage(path: Path, how: str) -> None:
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 100)
    elif how == "pickled code":   # weights_only refuses to rebuild a numpy array: pickled code never runs
        torch.save({"format": "mixbench-checkpoint", "x": __import__("numpy").zeros(3)}, path)
    elif how == "other format":
        payload = torch.load(path, weights_only=True)
        torch.save({**payload, "format_version": 99}, path)
    elif how == "not a checkpoint":
        torch.save({"weights": torch.zeros(3)}, path)
    elif how == "one bit flipped":   # torch checks no CRC: the file still loads, with one weight changed
        name, weight = next((k, t) for k, t in torch.load(path, weights_only=True)["model"].items() if t.numel() > 16)
        raw = bytearray(path.read_bytes())
        at = raw.find(weight.numpy().tobytes())
        assert at >= 0
        raw[at + 4 * 5] ^= 0x01   # the lowest bit of the sixth float
        path.write_bytes(bytes(raw))
        assert not torch.equal(torch.load(path, weights_only=True)["model"][name], weight)


@pytest.mark.parametrize("how,message", [
    ("truncated", "is damaged or not a mixbench checkpoint"),
    ("garbage", "is damaged or not a mixbench checkpoint"),
    ("pickled code", "is damaged or not a mixbench checkpoint"),
    ("other format", "was written in checkpoint format 99; this mixbench reads format 3 only"),
    ("not a checkpoint", "is not a mixbench checkpoint"),
    ("one bit flipped", "seed0.ckpt is damaged: its content does not match the digest it was written with"),
])
def test_a_damaged_checkpoint_is_refused_and_nothing_is_touched(out, how, message):
    damage(out / RNB / "seed0.ckpt", how)
    before = snapshot(out)
    with pytest.raises(MixbenchError, match=message):
        run(settings(out))
    assert snapshot(out) == before


@pytest.mark.parametrize("change,message", [
    ({"algo": "stratified"}, "strategy (rnb in the checkpoint, stratified now)"),
    ({"params": {"lam": 2.0}}, "hyperparameters lam (3.0 in the checkpoint, 2.0 now)"),
    ({"steps": 30}, "config steps (20 in the checkpoint, 30 now)"),
    ({"lr": 1e-3}, "config lr (0.003 in the checkpoint, 0.001 now)"),
    ({"seed": 1}, "config seed (0 in the checkpoint, 1 now)"),
])
def test_a_checkpoint_of_another_run_is_refused_by_what_differs(out, change, message):
    # Another strategy's or seed's checkpoint only lies at this run's path if someone put it there.
    algo, seed = change.get("algo", "rnb"), change.get("seed", 0)
    target = out / f"synthetic/{algo}/original/seed{seed}.ckpt"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / RNB / "seed0.ckpt", target)
    before = snapshot(out)
    with pytest.raises(MixbenchError, match=r"cannot resume from .*: it was made with other settings: ") as caught:
        run(settings(out, **change))
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert snapshot(out) == before


def test_a_checkpoint_on_other_domains_is_refused(out):
    """Regrouped domains are made again on resume: other names, or the same names holding other
    examples (the cache or the task changed), are refused."""
    plan = checkpoint_plan(out / RNB / "seed0.json", load_checkpoint(out / RNB / "seed0.ckpt").identity,
                           resume=REQUIRED, every=None, keep=1)
    data = Synthetic().load()
    assert check_domains(plan, data, REQUIRED) is plan
    fewer = TaskData(train=[e for e in data.train if e.domain != "d3"], eval=[e for e in data.eval if e.domain != "d3"])
    with pytest.raises(MixbenchError, match=r"was made on other domains \(4: d0, d1, d2, d3; this run has 3: "):
        check_domains(plan, fewer, REQUIRED)
    moved = [dataclasses.replace(e, domain="d1") if e.domain == "d0" and i % 2 else e for i, e in enumerate(data.train)]
    with pytest.raises(MixbenchError, match="was made on domains of the same names holding other examples"):
        check_domains(plan, TaskData(train=moved, eval=data.eval), REQUIRED)


def test_compare_starts_a_cell_over_when_its_checkpoint_cannot_be_used(out, capsys):
    damage(out / RNB / "seed0.ckpt", "truncated")
    assert run(settings(out, resume=WHEN_POSSIBLE)).finished
    assert "not resuming:" in capsys.readouterr().err
    assert RunResult.load(out / RNB / "seed0.json").finished
    assert load_checkpoint(out / RNB / "seed0.ckpt").step == 20   # a whole new one replaced it


# ---------------------------------------------------------------- the command line: one line, exit 2


def test_resume_without_a_checkpoint_is_one_line_and_exit_2(run_cli, finished, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    (out / RNB / "seed0.ckpt").unlink()
    before = snapshot(out)
    proc = run_cli("run", "--algo", "rnb", *TINY_CLI, "--out", str(out), "--resume")
    assert_one_error_line(proc, "cannot resume: no checkpoint at", "run without --resume to start over")
    assert snapshot(out) == before


@pytest.mark.parametrize("how,message", [("truncated", "seed0.ckpt is damaged or not a mixbench checkpoint"),
                                         ("one bit flipped", "seed0.ckpt is damaged: its content does not match")])
def test_resume_from_a_damaged_checkpoint_is_one_line_and_exit_2(run_cli, finished, tmp_path, how, message):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    damage(out / RNB / "seed0.ckpt", how)
    before = snapshot(out)
    proc = run_cli("run", "--algo", "rnb", *TINY_CLI, "--out", str(out), "--resume")
    assert_one_error_line(proc, message)
    assert snapshot(out) == before
