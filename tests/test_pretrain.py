"""`mixbench pretrain`: the shipped base's recipe replays bit for bit, from the Debian packages
where they are installed and from the shipped corpus slice anywhere else."""

from __future__ import annotations

import json

import pytest

from mixbench.config import TrainConfig
from mixbench.errors import MixbenchError
from mixbench.experiments.pretrain import corpus_slice, recipe
from mixbench.experiments.pretrain.corpus import cut
from mixbench.models.base_gpt import BASE_FILE, load_base, weights_sha256

SHIPPED = json.loads(recipe.RECIPE_FILE.read_text())
REPLAYED = 2   # of the recipe's SLICE_STEPS: enough to show the weights after a step agree, and fast


def test_the_recipe_records_the_corpus_the_base_and_its_first_steps():
    assert TrainConfig.from_dict(SHIPPED["config"]) == recipe.CONFIG
    assert len(SHIPPED["first_steps"]["train_losses"]) == recipe.SLICE_STEPS
    assert set(SHIPPED["corpus"]["sources"]) == {"wordnet-base", "python3.11-doc"}
    assert all(len(f["sha256"]) == 64 for f in SHIPPED["corpus"]["files"])
    assert weights_sha256(load_base().state_dict()) == SHIPPED["weights_sha256"]
    assert BASE_FILE.stat().st_size <= 16 * 2**20


def test_the_slice_holds_what_the_first_steps_read():
    payload = corpus_slice.read(recipe.SLICE_FILE)
    assert payload["steps"] == recipe.SLICE_STEPS and payload["corpus_sha256"] == SHIPPED["corpus"]["sha256"]
    assert 0 < len(payload["train"]) <= recipe.SLICE_STEPS * recipe.CONFIG.batch_size
    assert payload["train_windows"] == SHIPPED["corpus"]["train_windows"]


def test_windows_end_on_whole_characters():
    text = "é" * 10
    windows = cut(text.encode("utf-8"), 5)
    assert "".join(windows) == text and all(len(w.encode()) <= 5 for w in windows)


def test_pretrain_replays_the_bases_first_steps_from_the_slice(tmp_path, monkeypatch):
    """As on a machine without the Debian packages."""
    from mixbench.experiments.pretrain import run, sources

    def missing():
        raise MixbenchError("no packages here")

    monkeypatch.setattr(sources, "source_files", missing)
    outcome = run.pretrain(tmp_path, steps=REPLAYED, progress=False)
    assert not outcome.finished and outcome.step == REPLAYED
    assert outcome.train_losses == SHIPPED["first_steps"]["train_losses"][:REPLAYED]   # bit for bit
    with pytest.raises(MixbenchError, match="only the shipped slice's first"):
        run.pretrain(tmp_path / "more", steps=recipe.SLICE_STEPS + 1, progress=False)


@pytest.mark.slow
def test_mixbench_pretrain_steps_n_reproduces_the_first_n_steps(run_cli, tmp_path):
    """The command itself, with whatever corpus this machine has, all of the slice's steps, then
    resumed for one more (the shortened run's checkpoint goes on)."""
    steps = recipe.SLICE_STEPS
    done = run_cli("pretrain", "--steps", str(steps), "--out", "base", "--no-progress")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "base" / "pretrain.json").read_text())
    assert record["train_losses"] == SHIPPED["first_steps"]["train_losses"]


def test_bad_steps_are_one_line_and_exit_2(run_cli):
    done = run_cli("pretrain", "--steps", "0", "--no-progress")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--steps must be from 1 to the recipe's" in done.stderr


def test_short_documents_share_a_window_and_every_document_end_leaves_room_for_the_end_token():
    from mixbench.experiments.pretrain.corpus import pack

    assert pack(["aaa", "bbb", "c" * 12, "d"], 9) == ["aaa\n\nbbb", "c" * 9, "ccc\n\nd"]
    assert pack(["x" * 9], 9) == ["x" * 9]   # a document filling its window exactly: no room, none added
