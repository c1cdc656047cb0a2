"""R&B in a plain PyTorch loop (mixbench.integrations.torch_loop.DomainMixer), with a tiny pure
torch language model (no transformers): the mixture moves, a run resumed mid-round from
`state_dict()` ends as the uninterrupted one, and 2 gloo processes reach the 1-process mixture."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from mixbench.algorithms.stratified import Stratified
from torch.utils.data import DataLoader

from mixbench.integrations import DOMAIN_IDS, DomainMixer, IntegrationError, leave_process_group
from mixbench.mixture import Mixture
from mixbench.strategy import Capability

VOCAB, SEQ, STEPS, K = 24, 10, 24, 6


class TinyLM(nn.Module):
    """An embedding, one mixing layer and a head tied to the embedding."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.mix = nn.Linear(16, 16)
        self.head = nn.Linear(16, VOCAB, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, x):
        return self.head(torch.tanh(self.mix(self.embed(x))))


def dataset() -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for d, name in enumerate(["up", "flat", "noise"]):
        for _ in range(30):
            if d == 0:
                seq = (rng.integers(VOCAB) + np.arange(SEQ)) % VOCAB
            elif d == 1:
                seq = np.full(SEQ, rng.integers(VOCAB))
            else:
                seq = rng.integers(VOCAB, size=SEQ)
            rows.append({"x": torch.as_tensor(seq, dtype=torch.long), "domain": name})
    return rows


def run(steps_to_stop=None, state=None, batch=8):
    """Train STEPS steps (or stop after `steps_to_stop`, returning a state); continue from `state`."""
    torch.manual_seed(0)
    model = TinyLM()
    data = dataset()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    mixer = DomainMixer("rnb", head=model.head, train_domains=[r["domain"] for r in data], total_steps=STEPS,
                        steps_per_round=K, batch_size=batch)
    net = nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        mixer.load_state_dict(state["mixer"])
    loader = DataLoader(data, batch_size=batch, sampler=mixer.sampler, collate_fn=mixer.collator())
    rows_seen = []
    batches = (b for _ in iter(int, 1) for b in loader)
    while mixer.step < STEPS:
        b = next(batches)
        ids = b.pop(DOMAIN_IDS)
        rows_seen.append(b["x"].tolist())
        with mixer.batch(ids):
            logits = net(b["x"])
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), b["x"][:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        mixer.step_end()
        if mixer.step == steps_to_stop:
            return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "mixer": mixer.state_dict()}
    return mixer, rows_seen


def test_the_mixture_moves_in_a_plain_loop():
    mixer, _ = run()
    assert [r.step for r in mixer.rounds] == [6, 12, 18, 24]
    assert np.abs(np.array(mixer.mixture.weights) - 1 / 3).max() > 0.05
    assert all(sum(r.counts) == K * 8 for r in mixer.rounds)


def test_a_run_resumed_mid_round_ends_as_the_uninterrupted_one():
    whole, _ = run()
    state = run(steps_to_stop=9)                       # in the middle of round 1: the tap's sums are saved too
    resumed, _ = run(state=state)
    assert np.array_equal(resumed.mixture.weights, whole.mixture.weights)
    assert [r.next_mixture for r in resumed.rounds] == [r.next_mixture for r in whole.rounds]


def test_a_strategy_without_the_head_it_needs_is_named():
    with pytest.raises(IntegrationError, match="not a linear layer"):
        DomainMixer("rnb", head=nn.Sequential(), train_domains=["a", "b"], total_steps=4, steps_per_round=2,
                    batch_size=2)


class ProbingPlugin(Stratified):
    """A plugin (not a registered built-in) that declares it takes probe steps."""

    capabilities = frozenset({Capability.PROBE_STEPS})


class PreparingPlugin(Stratified):
    """A plugin that works before training with what a user's loop serves: metering only."""

    def prepare(self, probe):
        probe.charge("plan", 10.0)
        return Mixture([0.75, 0.25])


@pytest.mark.parametrize("strategy, words", [
    ("skillit", "scratch training runs"), ("aioli", "probe training steps"), ("dga", "extra gradient batches"),
    ("doremi", "scratch training runs"), ("doge", "extra gradient batches"),
    (ProbingPlugin(), "probe training steps")])
def test_a_strategy_that_needs_mixbenchs_trainer_is_refused_by_its_declaration(strategy, words):
    with pytest.raises(IntegrationError) as exc:
        DomainMixer(strategy, head=None, train_domains=["a", "b"], total_steps=4, steps_per_round=2, batch_size=2)
    message = str(exc.value)
    assert words in message and "which only mixbench's own trainer serves" in message and "\n" not in message


def test_a_strategy_that_prepares_with_what_a_loop_serves_runs_its_prepare():
    mixer = DomainMixer(PreparingPlugin(), head=None, train_domains=["a", "b"], total_steps=4, steps_per_round=2,
                        batch_size=2)
    assert mixer.mixture.weights.tolist() == [0.75, 0.25]
    assert mixer.sampler.mixture_for(0).tolist() == [0.75, 0.25]
    assert mixer.meter.flops[("strategy", "plan")] == 10.0


def _worker(rank: int, port: int, queue) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    mixer, rows = run(batch=4)
    queue.put((rank, list(mixer.mixture.weights), rows))
    del mixer
    leave_process_group()


@pytest.mark.slow
def test_two_gloo_processes_reach_the_one_process_mixture():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_worker, args=(r, port, queue)) for r in range(2)]
    for p in processes:
        p.start()
    results = sorted(queue.get(timeout=300) for _ in processes)
    for p in processes:
        p.join(timeout=60)
    single, single_rows = run(batch=8)
    for _, mixture, _ in results:
        np.testing.assert_allclose(mixture, single.mixture.weights, rtol=0, atol=1e-5)
    for step, (a, b) in enumerate(zip(results[0][2], results[1][2])):
        assert sorted(a + b) == sorted(single_rows[step])
