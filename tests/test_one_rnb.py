"""One R&B: mixbench's trainer (what `mixbench run` trains) and DomainMixer in a plain torch loop
(what a library user runs) draw the same batches and reach the same mixture every round, because
both draw through the one sampler and drive the one round driver.

The plain loop below is a user's loop: it builds the same model from the same seed, encodes the
same examples and steps AdamW with the same schedule, and leaves everything about mixing to
DomainMixer (its sampler, its tap, its strategy)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mixbench import registry
from mixbench.engine import train
from mixbench.engine.callbacks import TrainCallback
from mixbench.engine.schedule import cosine_schedule
from mixbench.experiments.results import RunResult
from mixbench.integrations import DomainMixer
from mixbench.workloads import build_workload

BUDGET = dict(steps=24, steps_per_round=6, batch_size=8, seq_len=32, n_layer=1, n_head=2, n_embd=32, seed=3,
              device="cpu", eval_per_domain=4)
CASES = {"stratified": {}, "rnb": {}, "rnb-unbiased": {"gram_estimator": "unbiased"}}


class Batches(TrainCallback):
    """Every global batch the trainer drew, as example indices into its training split."""

    def __init__(self):
        self.rows: list[list[int]] = []

    def on_step(self, result) -> None:
        self.rows.append(result.rows.tolist())


def trainer_run(algo: str, params: dict):
    task = registry.tasks.create("synthetic")
    batches = Batches()
    history = train(task.load(), registry.strategies.create(algo, **params), task.budget.override(**BUDGET),
                    callbacks=[batches], progress=False)
    return history, batches.rows


def plain_torch_run(algo: str, params: dict):
    """A user's loop around DomainMixer, on the trainer's model, data and optimiser settings."""
    task = registry.tasks.create("synthetic")
    data, cfg = task.load(), task.budget.override(**BUDGET)
    torch.manual_seed(cfg.seed)
    workload = build_workload(data.modality, cfg)
    model = workload.model
    train_split = workload.encode(data.train, data.domains)
    labels = [data.domains[i] for i in train_split.domain_ids.tolist()]
    q = dict(zip(data.domains, data.eval_proportions()))
    mixer = DomainMixer(algo, strategy_params=params, head=model.head, train_domains=labels,
                        eval_proportions=q, total_steps=cfg.steps, steps_per_round=cfg.steps_per_round,
                        batch_size=cfg.batch_size, seed=cfg.seed)
    assert mixer.domains == data.domains   # the same domain numbering as the trainer's
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    lr_at = cosine_schedule(cfg.lr, cfg.steps, cfg.warmup_fraction)
    loader = DataLoader(range(len(train_split)), batch_size=cfg.batch_size, sampler=mixer.sampler)
    batches = (rows for _ in iter(int, 1) for rows in loader)   # the sampler goes on across epochs
    drawn = []
    model.train()
    for step, rows in zip(range(cfg.steps), batches):
        drawn.append(rows.tolist())
        ids = train_split.domain_ids[rows]
        with mixer.batch(ids), workload.using(model):
            out = workload.loss(train_split.batch(rows, "cpu"))
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        optimizer.step()
        mixer.record_losses(ids, out.row_loss, out.row_weight)
        mixer.step_end(float(out.loss.detach()))
    mixer.close()
    return mixer, drawn


@pytest.mark.parametrize("case", CASES)
def test_the_trainer_and_a_plain_torch_loop_run_the_same_rnb(case):
    algo, params = case.split("-")[0], CASES[case]
    history, trainer_batches = trainer_run(algo, params)
    mixer, loop_batches = plain_torch_run(algo, params)

    assert trainer_batches == loop_batches                       # the same examples, step by step
    assert len(history.rounds) == len(mixer.rounds) == 4
    for record, log in zip(history.rounds, mixer.rounds):
        assert record.counts == log.counts
        np.testing.assert_allclose(record.mixture, log.mixture, rtol=0, atol=1e-6)   # sampled in that round
    np.testing.assert_allclose(history.final_mixture, mixer.mixture.weights, rtol=0, atol=1e-6)
    if algo == "rnb":   # Balance moved the mixture: the comparison is not of two uniform mixtures
        assert np.abs(np.array(history.final_mixture) - 0.25).max() > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["paper", "unbiased"])
def test_mixbench_run_on_the_command_line_trains_the_plain_loops_rnb(tmp_path, estimator):
    """The same, end to end: `mixbench run`'s results file holds the plain loop's mixtures."""
    options = [f"--{k.replace('_', '-')}={v}" for k, v in BUDGET.items()]
    proc = subprocess.run([sys.executable, "-m", "mixbench", "run", "--algo", "rnb", "--task", "synthetic",
                           "--domains", "original", "--gram-estimator", estimator, *options, "--no-mlflow",
                           "--no-progress", "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = RunResult.load(tmp_path / "synthetic" / "rnb" / "original" / f"seed{BUDGET['seed']}.json")
    mixer, _ = plain_torch_run("rnb", {"gram_estimator": estimator})
    for ran, log in zip(result.mixture.per_round, mixer.rounds, strict=True):
        np.testing.assert_allclose(ran, log.mixture, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.mixture.final, mixer.mixture.weights, rtol=0, atol=1e-6)
