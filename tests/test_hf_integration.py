"""R&B inside transformers.Trainer (mixbench.integrations.hf): a tiny GPT-2 from a config, random
weights, on CPU, offline. The mixture moves, the tap's per-domain gradients are autograd's, the
mixture and per-domain losses reach the Trainer's log history, a resumed run ends as the
uninterrupted one, and the same holds under torchrun with 2 gloo processes (marked slow).

Run as a script (`torchrun ... tests/test_hf_integration.py OUT.json`) it is the DDP worker.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
datasets = pytest.importorskip("datasets")

from mixbench.algorithms.rnb import RnB  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel, TrainingArguments  # noqa: E402

from mixbench.engine.sampler import MixtureSampler  # noqa: E402
from mixbench.integrations import IntegrationError, MixingCallback, MixingTrainer, leave_process_group  # noqa: E402
from mixbench.mixture import Mixture  # noqa: E402
from mixbench.strategy import MixingStrategy, Signal  # noqa: E402

DOMAINS = ("alpha", "beta", "gamma")
SEQ, VOCAB = 16, 48
STEPS, K = 20, 5


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=32, n_layer=1, n_head=2, bos_token_id=0,
                        eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)   # no dropout: runs compare
    return GPT2LMHeadModel(config)


def sequences(per_domain: int, seed: int) -> dict:
    """Three learnably different domains of fixed-length token rows, every row distinct."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {"input_ids": [], "labels": [], "domain": []}
    seen = set()
    for d, name in enumerate(DOMAINS):
        while sum(1 for x in rows["domain"] if x == name) < per_domain:
            if d == 0:      # progressions
                start, step = rng.integers(40), rng.integers(1, 4)
                seq = [int((start + step * j) % 40 + 8) for j in range(SEQ)]
            elif d == 1:    # two alternating tokens
                a, b = rng.integers(8, VOCAB, size=2)
                seq = [int(a if j % 2 else b) for j in range(SEQ)]
                seq[0] = int(rng.integers(8, VOCAB))
            else:           # noise
                seq = rng.integers(8, VOCAB, size=SEQ).tolist()
            if tuple(seq) in seen:
                continue
            seen.add(tuple(seq))
            rows["input_ids"].append(seq)
            rows["labels"].append(list(seq))
            rows["domain"].append(name)
    return rows


def train_set():
    return datasets.Dataset.from_dict(sequences(40, seed=0))


def eval_set():
    return datasets.Dataset.from_dict(sequences(6, seed=1))


def arguments(out: Path, batch: int = 8, **extra) -> TrainingArguments:
    settings = dict(output_dir=str(out), max_steps=STEPS, per_device_train_batch_size=batch, learning_rate=3e-3,
                    logging_steps=5, save_steps=10, report_to="none", use_cpu=True, seed=0, disable_tqdm=True,
                    dataloader_num_workers=0)
    settings.update(extra)
    return TrainingArguments(**settings)


def make_trainer(out: Path, strategy="rnb", batch: int = 8, model=None, train=None, steps_per_round=K, **extra):
    mixing = MixingCallback(strategy, steps_per_round=steps_per_round, eval_every_round=True)
    trainer = MixingTrainer(model=model or tiny_gpt2(), args=arguments(out, batch, **extra),
                            train_dataset=train if train is not None else train_set(), eval_dataset=eval_set(),
                            callbacks=[mixing])
    return trainer, mixing


def round_logs(trainer) -> list[dict]:
    return [r for r in trainer.state.log_history if "mixing/round" in r]


def final_mixture(mixing) -> np.ndarray:
    return np.asarray(mixing.mixer.mixture.weights)


# -- the Trainer run --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    trainer, mixing = make_trainer(out)
    trainer.train()
    return out, trainer, mixing


def test_the_mixture_moves_and_reaches_the_log_history(full_run):
    _, trainer, mixing = full_run
    rounds = round_logs(trainer)
    assert [r["step"] for r in rounds] == [5, 10, 15, 20]
    first = trainer.state.log_history[0]
    assert [first[f"mixture/{d}"] for d in DOMAINS] == pytest.approx([1 / 3] * 3)   # p_0 is logged too
    for r in rounds:
        assert sum(r[f"mixture/{d}"] for d in DOMAINS) == pytest.approx(1.0)
        assert all(np.isfinite(r[f"train_loss/{d}"]) and np.isfinite(r[f"eval_loss/{d}"]) for d in DOMAINS)
        assert sum(r[f"drawn/{d}"] for d in DOMAINS) == K * 8
    assert np.abs(final_mixture(mixing) - 1 / 3).max() > 0.05          # moved from uniform
    assert any("loss" in r for r in trainer.state.log_history)          # the Trainer's own logs are kept
    assert rounds[-1]["mixing/overhead_flops"] > rounds[0]["mixing/overhead_flops"] > 0   # the tap's adds, G q


def test_resuming_from_a_mid_run_checkpoint_ends_as_the_uninterrupted_run(full_run):
    out, trainer, mixing = full_run
    checkpoint = out / "checkpoint-10"
    assert (checkpoint / "mixbench_mixing.pt").is_file()
    resumed, resumed_mixing = make_trainer(out, model=tiny_gpt2(seed=1))   # other weights: the checkpoint's win
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert np.array_equal(final_mixture(resumed_mixing), final_mixture(mixing))
    # The resumed log history holds the checkpoint's rounds, then the rounds it ran itself.
    assert [r["step"] for r in round_logs(resumed)] == [5, 10, 15, 20]
    assert without_seconds(round_logs(resumed)) == without_seconds(round_logs(trainer))


@pytest.mark.parametrize("damage,message", [
    (lambda path: path.write_bytes(path.read_bytes()[:200]), "cannot be read as a mixing state: it is damaged"),
    (lambda path: torch.save({**(state := torch.load(path, weights_only=True)), "step": 10,
                              "rounds": state["rounds"][:1]}, path),
     "mixbench_mixing.pt is damaged: its content does not match the digest"),
])
def test_a_damaged_mixing_state_is_refused_in_one_line_naming_the_file(full_run, tmp_path, damage, message):
    """A truncated state file (a raw error from torch.load before) and one whose content changed
    (resumed silently before: torch checks no CRC) are each one IntegrationError naming it."""
    out, _, _ = full_run
    copy_out = tmp_path / "out"
    copy_out.mkdir()
    checkpoint = copy_out / "checkpoint-10"
    shutil.copytree(out / "checkpoint-10", checkpoint)
    damage(checkpoint / "mixbench_mixing.pt")
    resumed, _ = make_trainer(copy_out)
    with pytest.raises(IntegrationError) as exc:
        resumed.train(resume_from_checkpoint=str(checkpoint))
    assert message in one_line(exc) and str(checkpoint / "mixbench_mixing.pt") in str(exc.value)


def test_domains_whose_metric_names_collide_keep_a_curve_each(tmp_path):
    """MLflow takes no '?' or '!' in a metric name: "math?" and "math!" both become "math_", and
    one domain's curves overwrote the other's. Each now has its own."""
    names = {"alpha": "math?", "beta": "math!", "gamma": "code"}
    train = train_set().map(lambda row: {"domain": names[row["domain"]]})
    mixing = MixingCallback("stratified", steps_per_round=K)
    trainer = MixingTrainer(model=tiny_gpt2(), args=arguments(tmp_path, max_steps=K), train_dataset=train,
                            callbacks=[mixing])
    trainer.train()
    [last] = round_logs(trainer)
    drawn = {k: v for k, v in last.items() if k.startswith("drawn/")}
    # Domains are numbered by sorted name: code 0, math! 1, math? 2.
    assert sorted(drawn) == ["drawn/code", "drawn/math_-1", "drawn/math_-2"]
    assert sum(drawn.values()) == K * 8


def without_seconds(logs: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "mixing/overhead_seconds"} for r in logs]


def test_gradient_accumulation_draws_and_mixes_as_one_big_batch(full_run, tmp_path):
    _, trainer, mixing = full_run
    accumulated, accumulated_mixing = make_trainer(tmp_path, batch=4, gradient_accumulation_steps=2, save_steps=100)
    accumulated.train()
    assert [sum(r[f"drawn/{d}"] for d in DOMAINS) for r in round_logs(accumulated)] == [K * 8] * 4
    np.testing.assert_allclose(final_mixture(accumulated_mixing), final_mixture(mixing), rtol=0, atol=1e-6)


@dataclass(kw_only=True, eq=False)
class LossGreedy(MixingStrategy):
    """The plugin example of docs/plugins.md: p ∝ exp(eta · per-domain eval loss)."""

    signals = frozenset({Signal.EVAL_LOSSES})
    eta: float = 5.0

    def start(self, ctx):
        self.mixture_ = Mixture.uniform(ctx.num_domains)
        return self.mixture_

    def update(self, feedback, probe):
        probe.charge("softmax", 3 * feedback.eval_losses.size)
        w = np.exp(self.eta * (feedback.eval_losses - feedback.eval_losses.max()))
        self.mixture_ = Mixture(w / w.sum())
        return self.mixture_


@pytest.mark.parametrize("strategy", ["stratified", "static", LossGreedy()], ids=["stratified", "static", "eval"])
def test_other_strategies_run_in_the_trainer(tmp_path, strategy):
    trainer, mixing = make_trainer(tmp_path, strategy=strategy, save_steps=100)
    trainer.train()
    last = round_logs(trainer)[-1]
    p = [last[f"mixture/{d}"] for d in DOMAINS]
    if strategy == "stratified":
        assert p == pytest.approx([1 / 3] * 3)
    elif strategy == "static":   # the training set's shares: 40 of each
        assert p == pytest.approx([1 / 3] * 3)
    else:                        # the highest eval loss gets the most
        losses = [round_logs(trainer)[-2][f"eval_loss/{d}"] for d in DOMAINS]
        assert int(np.argmax(p)) == int(np.argmax(losses))
        assert mixing.mixer.meter.flops[("strategy", "softmax")] > 0
    assert all(np.isfinite(last[f"train_loss/{d}"]) for d in DOMAINS)


def test_the_taps_per_domain_gradients_are_autograds_on_a_tied_head(tmp_path):
    """Round 0 of one step: the tap's sums against the gradient of the same batch's loss with
    respect to the head's use of the weight alone, restricted to each domain's rows (an untied
    copy of the model, where only that domain's rows go through a separate leaf)."""
    seen = []

    class Recording(RnB):
        def update(self, feedback, probe):
            seen.append(feedback.domain_gradients)
            return super().update(feedback, probe)

    model = tiny_gpt2()
    assert model.lm_head.weight is model.transformer.wte.weight   # tied
    before = copy.deepcopy(model)
    trainer, mixing = make_trainer(tmp_path, strategy=Recording(), model=model, steps_per_round=1, max_steps=2)
    trainer.train()
    # The first step's batch: unit 0 of a fresh sampler with the same seed.
    fresh = MixtureSampler(mixing.sampler.domain_ids, 3, batch_size=8, seed=0)
    fresh.set_mixture(np.full(3, 1 / 3), from_unit=0)
    rows = fresh.draw_unit()
    data = train_set()
    input_ids = torch.tensor([data[int(i)]["input_ids"] for i in rows])
    domains = mixing.sampler.domain_ids[rows]
    # The loss the Trainer back-propagates divides the summed token loss by the labels it counts
    # (transformers counts all of them unless it knows the model's loss shifts them).
    scored = (input_ids[:, 1:] if trainer._loss_shifts_labels else input_ids).ne(-100).sum()
    for d in range(3):
        reference = head_use_gradient(before, input_ids, torch.as_tensor(domains == d), scored)
        assert seen[0].counts[d] == (domains == d).sum()
        np.testing.assert_allclose(seen[0].sums[d], reference.reshape(-1).numpy(), rtol=1e-5, atol=1e-7)


def head_use_gradient(model, input_ids, rows: torch.Tensor, scored) -> torch.Tensor:
    """d loss / d W through the head's use by `rows` only (the embedding's use and other rows held)."""
    untied = copy.deepcopy(model)
    weight = untied.lm_head.weight.detach().clone()
    leaf = weight.clone().requires_grad_(True)

    class SplitHead(nn.Module):
        def forward(self, hidden):
            mine = hidden @ leaf.t()
            others = hidden @ weight.t()
            return torch.where(rows.view(-1, *([1] * (hidden.ndim - 1))), mine, others)

    untied.lm_head = SplitHead()
    loss = untied(input_ids=input_ids, labels=input_ids, num_items_in_batch=scored).loss
    (grad,) = torch.autograd.grad(loss, leaf)
    return grad


# -- bad input ----------------------------------------------------------------------------------


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and isinstance(exc.value, ValueError)
    return message


def test_a_training_set_without_the_domain_column_is_named(tmp_path):
    with pytest.raises(IntegrationError) as exc:
        make_trainer(tmp_path, train=train_set().remove_columns("domain"))
    assert "no 'domain' column" in one_line(exc)


def test_an_eval_domain_that_is_not_a_training_domain_is_named(tmp_path):
    rows = sequences(6, seed=1)
    rows["domain"][0] = "delta"
    mixing = MixingCallback("rnb", steps_per_round=K)
    with pytest.raises(IntegrationError) as exc:
        MixingTrainer(model=tiny_gpt2(), args=arguments(tmp_path), train_dataset=train_set(),
                      eval_dataset=datasets.Dataset.from_dict(rows), callbacks=[mixing])
    assert "'delta'" in one_line(exc) and "not one of the training domains" in str(exc.value)


def test_an_output_layer_that_is_not_linear_is_named(tmp_path):
    model = tiny_gpt2()
    model.lm_head = nn.Sequential(nn.Linear(32, VOCAB, bias=False))
    with pytest.raises(IntegrationError) as exc:
        make_trainer(tmp_path, model=model)
    assert "not a linear layer" in one_line(exc) and "Sequential" in str(exc.value)


@pytest.mark.parametrize("name", ["skillit", "aioli", "dga", "doremi", "doge"])
def test_strategies_that_need_mixbenchs_trainer_are_refused_in_one_line(name):
    with pytest.raises(IntegrationError) as exc:
        MixingCallback(name)
    assert "which only mixbench's own trainer serves" in one_line(exc)


def test_a_trainer_without_the_mixin_is_told_what_to_use(tmp_path):
    from transformers import Trainer

    trainer = Trainer(model=tiny_gpt2(), args=arguments(tmp_path, max_steps=1), train_dataset=train_set(),
                      callbacks=[MixingCallback("rnb")])
    with pytest.raises(IntegrationError, match="needs MixingTrainer"):
        trainer.train()


# -- torchrun, 2 gloo processes ---------------------------------------------------------------


@pytest.mark.slow
def test_two_gloo_processes_draw_disjoint_slices_and_reach_the_one_process_mixture(tmp_path):
    out = tmp_path / "ddp.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           __file__, str(out), str(tmp_path / "ddp-run")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(ranks) == 2
    one = tmp_path / "one"
    single, single_mixing = make_trainer(one, batch=8, save_steps=100)
    seen = record_training_rows(single)
    single.train()
    # Each step: the two ranks' rows are disjoint, and together the one-process step's rows.
    by_rank = [r["rows"] for r in sorted(ranks, key=lambda r: r["rank"])]
    assert len(by_rank[0]) == len(by_rank[1]) == len(seen) == STEPS
    for step, (a, b) in enumerate(zip(*by_rank)):
        assert not set(a) & set(b), f"step {step} drew an example on both ranks"
        assert sorted(a + b) == sorted(seen[step])
    for r in ranks:
        np.testing.assert_allclose(r["mixture"], final_mixture(single_mixing), rtol=0, atol=1e-5)
        np.testing.assert_allclose(r["rounds"], [[x[f"mixture/{d}"] for d in DOMAINS] for x in round_logs(single)],
                                   rtol=0, atol=1e-5)


def record_training_rows(trainer) -> list[list[int]]:
    """The training-set rows of every training forward, one list per step (batches are found by
    their token rows, which are all distinct)."""
    data = train_set()
    where = {tuple(data[i]["input_ids"]): i for i in range(len(data))}
    steps: list[list[int]] = []

    def record(module, args, kwargs):
        if torch.is_grad_enabled() and "input_ids" in kwargs:
            steps.append([where[tuple(row)] for row in kwargs["input_ids"].tolist()])

    trainer.model.register_forward_pre_hook(record, with_kwargs=True)
    return steps


def ddp_worker(out: str, folder: str) -> None:
    """One of 2 processes: half the batch each, the same global batch as the one-process run."""
    trainer, mixing = make_trainer(Path(folder), batch=4, save_steps=100, ddp_backend="gloo")
    rows = record_training_rows(trainer)
    trainer.train()
    rank = trainer.args.process_index
    record = {"rank": rank, "rows": rows, "mixture": final_mixture(mixing).tolist(),
              "rounds": [[x[f"mixture/{d}"] for d in DOMAINS] for x in round_logs(trainer)]}
    with open(out, "a") as f:   # short lines appended by each rank: whole lines either way
        f.write(json.dumps(record) + "\n")
    del trainer, mixing
    leave_process_group()


if __name__ == "__main__":
    ddp_worker(sys.argv[1], sys.argv[2])
