"""The image-text path: the contrastive loss, the tap on the dual encoder's image projection,
metering, and short real runs on `digits` scored by zero-shot retrieval."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mixbench import registry
from mixbench.config import TrainConfig
from mixbench.engine.meter import Meter
from mixbench.engine.tap import GradientTap
from mixbench.engine.trainer import train
from mixbench.errors import MixbenchError
from mixbench.models.clip import ClipConfig, DualEncoder
from mixbench.models.gpt import GPTConfig
from mixbench.task import Example, TaskData, TaskDataError
from mixbench.workloads.image_text import ContrastiveImageText, contrastive_row_losses

# Measured on digits, 60 steps (3 rounds of 20), stratified, seeds 0-4: initial top-1
# 0.092-0.109 (chance 0.1), final 0.575-0.746. The threshold sits well below the worst seed.
DIGITS_TOP1_AFTER_60_STEPS = 0.40
# A tiny dual encoder for the encoding tests (steps and steps-per-round play no part there).
SMALL_CLIP = TrainConfig(model="clip", seq_len=8, n_layer=1, n_head=2, n_embd=16, image_size=4)


@pytest.fixture(scope="module")
def digits():
    task = registry.tasks.create("digits")
    return task, task.load()


def _examples(n: int, domains: int, size: int = 8, seed: int = 0) -> list[Example]:
    rng = np.random.default_rng(seed)
    return [Example(prompt="", response=f"caption {i % 5}", domain=f"d{i % domains}",
                    image=rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)) for i in range(n)]


# -- the loss ------------------------------------------------------------------------------------

def test_contrastive_loss_is_symmetric_cross_entropy_when_captions_differ():
    logits = torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    rows = contrastive_row_losses(logits, torch.arange(5))
    labels = torch.arange(5)
    expected = (F.cross_entropy(logits, labels, reduction="none") + F.cross_entropy(logits.t(), labels,
                                                                                    reduction="none")) / 2
    torch.testing.assert_close(rows, expected)


def test_identical_captions_share_their_loss_evenly():
    # Captions 0 and 1 are the same text, so their columns of logits are identical. Which copy an
    # image "should" match is undecidable: both are right. The batch loss is the same either way;
    # what changes is each pair's share of it, which the per-domain losses are built from.
    logits = torch.tensor([[5.0, 5.0, -1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 4.0]])
    shared = contrastive_row_losses(logits, torch.tensor([4, 4, 7]))
    one_hot = contrastive_row_losses(logits, torch.tensor([0, 1, 2]))
    assert shared.sum().item() == pytest.approx(one_hot.sum().item(), rel=1e-6)
    # Image 0 matches the caption far better than image 1 does; with one-hot targets pair 1 would
    # also be blamed for caption 1 not picking image 1 over image 0, a distinction nothing can learn.
    log_softmax_rows = logits.log_softmax(1)
    assert shared[0].item() == pytest.approx(
        (-log_softmax_rows[0, 0] - 0.5 * (logits[:, 0].log_softmax(0)[0] + logits[:, 0].log_softmax(0)[1])).item() / 2)
    assert one_hot[1] > shared[1] and one_hot[0] < shared[0]


# -- the gradient tap on the image projection ----------------------------------------------------

def test_tap_splits_the_image_projection_gradient_exactly_by_domain():
    torch.manual_seed(0)
    text = GPTConfig(seq_len=16, n_layer=1, n_head=2, n_embd=16)
    workload = ContrastiveImageText(DualEncoder(ClipConfig(text=text, image_size=8)))
    reference = copy.deepcopy(workload.model)
    examples = _examples(7, domains=3)
    split = workload.encode(examples, ("d0", "d1", "d2"))
    batch = split.batch(torch.arange(7), "cpu")

    tap = GradientTap(workload.model.head, 3, Meter())
    with tap.batch(split.domain_ids):
        loss = workload.loss(batch).loss
    loss.backward()
    got = tap.snapshot_and_reset()

    # Reference: the head's weight gradient is Σ_i (dL/dz_i) a_iᵀ over examples i; split by domain.
    images, tokens, ends, caption_ids = batch
    features = reference.image_encoder(images)
    z = reference.head(features)
    z.retain_grad()
    image_emb = F.normalize(z, dim=-1)
    text_emb = reference.encode_texts(tokens, ends)
    contrastive_row_losses(reference.scale() * image_emb @ text_emb.t(), caption_ids).mean().backward()
    for d in range(3):
        rows = split.domain_ids == d
        expected = (z.grad[rows].t() @ features[rows]).detach().reshape(-1).numpy()
        np.testing.assert_allclose(got.sums[d], expected, rtol=1e-5, atol=1e-6)
    assert got.counts.tolist() == [3, 2, 2]
    torch.testing.assert_close(workload.model.head.weight.grad, reference.head.weight.grad, rtol=1e-5, atol=1e-6)


# -- encoding and metering -----------------------------------------------------------------------

def test_images_are_resized_and_captions_end_with_the_end_token():
    workload = ContrastiveImageText.build(SMALL_CLIP)
    examples = [Example(prompt="", response="a dog", domain="d0", image=np.full((8, 8, 3), 200, np.uint8)),
                Example(prompt="", response="a caption longer than eight bytes", domain="d0",
                        image=np.zeros((5, 9, 3), dtype=np.uint8)),
                Example(prompt="", response="a dog", domain="d0", image=np.zeros((4, 4, 3), dtype=np.uint8))]
    split = workload.encode(examples, ("d0",))
    assert split.images.shape == (3, 3, 4, 4) and split.images.dtype == torch.uint8
    assert int(split.images[0].min()) == int(split.images[0].max()) == 200   # a flat image stays flat
    assert split.ends.tolist() == [5, 7, 5]          # cut to seq_len - 1, so the end token fits
    assert split.tokens[1, 7].item() == workload.tokenizer.eos_id
    assert split.caption_ids.tolist() == [0, 1, 0]   # equal captions share an id


def test_an_example_without_a_proper_image_is_a_clear_error():
    workload = ContrastiveImageText.build(SMALL_CLIP)
    bad = Example(prompt="", response="x", domain="d0", image=np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(MixbenchError, match=r"\(H, W, 3\) uint8"):
        workload.encode([bad], ("d0",))
    with pytest.raises(TaskDataError, match="either all image-text or all text"):
        TaskData(train=_examples(2, 1) + [Example("p", "r", "d0")], eval=_examples(1, 1))


def test_training_flops_follow_the_counted_forward_flops(digits):
    task, data = digits
    cfg = task.budget.override(steps=10, steps_per_round=10)
    history = train(data, registry.strategies.create("stratified"), cfg, progress=False)
    workload = ContrastiveImageText.build(cfg)
    per_example = 2 * workload.num_params() * workload.tokens_per_example
    assert per_example > 2 * workload.num_params()   # convolutions reuse weights at every pixel
    assert history.meter.report().train_flops == pytest.approx(3 * per_example * cfg.batch_size * 10)


# -- short real runs -----------------------------------------------------------------------------

def test_digits_retrieval_is_clearly_above_chance_after_a_short_run(digits):
    task, data = digits
    history = train(data, registry.strategies.create("stratified"),
                    task.budget.override(steps=60, steps_per_round=20), progress=False)
    chance = history.final_eval_metrics["retrieval_chance"]
    assert chance == pytest.approx(0.1)
    assert history.initial_eval_metrics["retrieval_top1"] < 0.2
    assert history.final_eval_metrics["retrieval_top1"] > DIGITS_TOP1_AFTER_60_STEPS
    assert history.final_mean_eval_loss < history.initial_mean_eval_loss
    per_domain = history.rounds[-1].domain_eval_metrics["retrieval_top1"]
    assert len(per_domain) == 10 and all(0 <= x <= 1 for x in per_domain)


@pytest.mark.parametrize("algo", registry.strategies.names())
def test_every_strategy_trains_the_dual_encoder(digits, algo):
    task, data = digits
    history = train(data, registry.strategies.create(algo),
                    task.budget.override(steps=20, steps_per_round=10), progress=False)
    assert len(history.train_losses) == 20
    assert np.all(np.isfinite(history.train_losses))
    assert np.all(np.isfinite(history.final_eval_losses))
    assert np.isclose(sum(history.final_mixture), 1.0)


@pytest.mark.slow
def test_cli_rnb_on_digits_end_to_end(run_cli, tmp_path):
    proc = run_cli("run", "--algo", "rnb", "--task", "digits", "--no-progress", "--steps", "60",
                   "--steps-per-round", "20", "--embedder", "tfidf")
    assert proc.returncode == 0, proc.stderr
    assert "retrieval_top1: initial" in proc.stdout and "retrieval_chance: 0.1000" in proc.stdout
    result = json.loads((tmp_path / "runs/digits/rnb/regroup/seed0.json").read_text())
    assert result["task"]["modality"] == "image-text" and result["config"]["model"] == "clip"
    assert result["metrics"]["final_eval_metrics"]["retrieval_top1"] > DIGITS_TOP1_AFTER_60_STEPS
    assert set(result["metrics"]["final_domain_eval_metrics"]["retrieval_top1"]) == set(result["domains"]["names"])
    assert result["overhead"]["flops_pct"] < 1.0


@pytest.mark.parametrize("task, model, message", [
    ("digits", "gpt", "image-text task trains the 'clip' dual encoder"),
    ("synthetic", "clip", "--model clip is for image-text tasks"),
])
def test_a_model_that_does_not_fit_the_task_is_refused(run_cli, tmp_path, task, model, message):
    proc = run_cli("run", "--algo", "stratified", "--task", task, "--model", model, "--no-progress", "--no-mlflow")
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.json"))


@pytest.mark.slow
def test_compare_and_report_on_digits_show_retrieval(run_cli, tmp_path):
    proc = run_cli("compare", "--task", "digits", "--algos", "stratified,rnb", "--seeds", "0,1", "--steps", "40",
                   "--steps-per-round", "20", "--embedder", "tfidf", "--no-mlflow", "--no-progress", "--out", "out")
    assert proc.returncode == 0, proc.stderr
    assert "retrieval_top1" in proc.stdout.splitlines()[0] or "retrieval_top1" in proc.stdout
    markdown = (tmp_path / "out/digits/summary.md").read_text()
    assert "retrieval_top1 (mean ± std)" in markdown
    csv = (tmp_path / "out/digits/summary.csv").read_text().splitlines()
    assert "retrieval_top1_mean" in csv[0] and len(csv) == 3
    report = run_cli("report", "out/digits")
    assert report.returncode == 0, report.stderr
    assert "retrieval_top1 during training" in (tmp_path / "out/digits/report/report.md").read_text()
    assert (tmp_path / "out/digits/report/retrieval_top1.png").stat().st_size > 0
