"""--regime scratch|finetune|smollm2: each brings its settings, refuses what cannot go with it in
one line, and is recorded with the run; finetune starts from the shipped base."""

from __future__ import annotations

import json

import pytest
import torch

from mixbench.config import BASE_CONTEXT, FINETUNE_PRESET, ConfigError, TrainConfig
from mixbench.models import build_language_model
from mixbench.models.base_gpt import BASE_FILE, load_base

CHAMP = TrainConfig(steps=400, steps_per_round=40, batch_size=16, seq_len=256, lr=3e-3, eval_per_domain=6)


def test_scratch_is_the_default_and_leaves_the_identity_of_older_runs_alone():
    assert TrainConfig().regime == "scratch"
    assert "regime" not in CHAMP.identity() and "trainable_blocks" not in CHAMP.identity()
    assert CHAMP.override(regime="finetune").identity()["regime"] == "finetune"


def test_finetune_brings_its_settings_and_keeps_the_tasks_steps_and_batch():
    cfg = CHAMP.override(regime="finetune", steps=40)
    assert (cfg.lr, cfg.warmup_fraction) == (FINETUNE_PRESET["lr"], FINETUNE_PRESET["warmup_fraction"])
    small = TrainConfig(steps=60, steps_per_round=10, n_layer=2, n_head=2, n_embd=32)   # synthetic's model
    assert (lambda c: (c.n_layer, c.n_head, c.n_embd))(small.override(regime="finetune")) == (4, 4, 128)
    assert (cfg.steps, cfg.batch_size, cfg.seq_len) == (40, 16, 256)
    assert CHAMP.override(regime="finetune", lr=1e-3).lr == 1e-3                     # the user's own win
    long_rows = TrainConfig(steps=600, steps_per_round=50, seq_len=1024)              # s1's context
    assert long_rows.override(regime="finetune").seq_len == BASE_CONTEXT


def test_smollm2_regime_is_the_smollm2_model():
    assert CHAMP.override(regime="smollm2").model == "smollm2"
    assert CHAMP.override(model="smollm2").regime == "smollm2"


@pytest.mark.parametrize("values, says", [
    ({"regime": "warm"}, "regime must be one of scratch, finetune, smollm2"),
    ({"regime": "finetune", "seq_len": 1024}, "at most 512"),
    ({"regime": "scratch", "model": "smollm2"}, "--regime smollm2 is --model smollm2"),
    ({"regime": "finetune", "model": "clip"}, "--model clip cannot"),
    ({"trainable_blocks": -1}, "trainable-blocks must be 0 or more"),
    ({"trainable_blocks": 5}, "more than n-layer"),
])
def test_what_cannot_go_together_is_refused(values, says):
    with pytest.raises(ConfigError, match=says):
        CHAMP.override(**values)


def test_the_base_ships_in_the_package_with_the_scratch_models_architecture():
    assert BASE_FILE.is_file() and BASE_FILE.stat().st_size <= 16 * 2**20
    base = load_base()
    scratch, _ = build_language_model("gpt", seq_len=256, n_layer=4, n_head=4, n_embd=128)
    assert base.num_params() == scratch.num_params()            # a fine-tuning step costs a scratch step
    tuned, _ = build_language_model("gpt", seq_len=256, n_layer=4, n_head=4, n_embd=128, regime="finetune")
    torch.testing.assert_close(tuned.head.weight, base.head.weight, rtol=0, atol=0)


def test_a_run_asking_for_another_shape_than_the_base_is_refused():
    from mixbench.errors import MixbenchError

    with pytest.raises(MixbenchError, match="the base has n-layer 4"):
        build_language_model("gpt", seq_len=256, n_layer=2, n_head=4, n_embd=128, regime="finetune")


def test_trainable_blocks_leaves_the_last_blocks_and_the_head_training():
    model, _ = build_language_model("gpt", seq_len=64, n_layer=4, n_head=4, n_embd=128, trainable_blocks=1)
    trained = {name.split(".")[0] + ("." + name.split(".")[1] if name.startswith("blocks") else "")
               for name, p in model.named_parameters() if p.requires_grad}
    assert trained == {"blocks.3", "ln_f", "head"}


def test_finetune_starts_champ_far_below_the_scratch_model():
    pytest.importorskip("champ_dataset")
    from mixbench import registry
    from mixbench.engine.evaluation import select_eval_subset
    from mixbench.workloads.text import encode_examples

    data = registry.tasks.create("champ").load()
    eval_rows = select_eval_subset(__import__("numpy").array([e.domain for e in data.eval]), 1)[:24]
    examples = [data.eval[i] for i in eval_rows]
    losses = {}
    for regime in ("scratch", "finetune"):
        torch.manual_seed(0)
        model, tokenizer = build_language_model("gpt", seq_len=256, n_layer=4, n_head=4, n_embd=128, regime=regime)
        split = encode_examples(examples, tuple(sorted({e.domain for e in examples})), tokenizer, 256)
        with torch.no_grad():
            logits = model.eval()(split.inputs)
            losses[regime] = torch.nn.functional.cross_entropy(logits.flatten(0, 1), split.targets.flatten(),
                                                               ignore_index=-100).item()
    assert losses["finetune"] < 0.8 * losses["scratch"], losses


def test_the_regime_is_in_the_results_the_summary_and_mlflow(run_cli, tmp_path):
    done = run_cli("run", "--algo", "stratified", "--task", "synthetic", "--domains", "original", "--regime",
                   "finetune", "--steps", "2", "--steps-per-round", "1", "--no-progress", "--out", "out")
    assert done.returncode == 0, done.stderr
    assert "regime finetune" in done.stdout
    result = json.loads(next((tmp_path / "out").rglob("seed0.json")).read_text())
    assert result["config"]["regime"] == "finetune" and result["config"]["lr"] == FINETUNE_PRESET["lr"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs and runs[0].data.params["train.regime"] == "finetune"
    assert runs[0].data.tags["mixbench.regime"] == "finetune"


def test_a_bad_regime_is_one_line_and_exit_2(run_cli):
    done = run_cli("run", "--algo", "stratified", "--task", "synthetic", "--regime", "warm", "--no-mlflow")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        "error: regime must be one of scratch, finetune, smollm2, got 'warm'"]


def test_paper_under_finetune_runs_the_text_tasks_only(monkeypatch, tmp_path):
    from mixbench.cli import paper
    from mixbench.experiments.settings import TrackingSettings

    monkeypatch.setattr("mixbench.experiments.paper.runner.default_tasks", lambda: ("champ", "openclipart"))
    how = dict(out_dir=tmp_path, command="mixbench paper", tracking=TrackingSettings(enabled=False), progress=False,
               checkpoint_every=None, keep_checkpoints=1, jobs=1)
    tuned = paper._settings(None, None, None, False, None, (), None, {"regime": "finetune"}, **how)
    assert tuned.tasks == ("champ",) and tuned.overrides == {"regime": "finetune"}
    assert paper._settings(None, None, None, False, None, (), None, {}, **how).tasks == ("champ", "openclipart")


def test_results_written_before_regimes_read_back_with_theirs():
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("regime", "trainable_blocks")}
    assert TrainConfig.from_dict(old).regime == "scratch"
    assert TrainConfig.from_dict({**old, "model": "smollm2"}).regime == "smollm2"
