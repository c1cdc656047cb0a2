"""The CUDA path, checked and timed: run by scripts/gpu_check.sh on a machine with a GPU.

1. The gradient tap on CUDA against autograd: a batch of the default task's model, per-domain
   head gradients from the tap against one autograd backward per domain (max abs and relative
   difference; both exact and sketched accumulators give autograd's weight gradient).
2. The sketched accumulator at SmolLM2-135M's head (V = 49,152, h = 576, m = 100, 64 MB): one
   add's time against the head's weight-gradient product for one 512-token example.
3. `rnb` on the default task (champ) on the GPU: steps/s, overhead in FLOPs and seconds.

Usage: python benchmarks/gpu_check.py [--task champ] [--steps N]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F
from mixbench.algorithms.rnb import RnB

from mixbench import registry
from mixbench.engine.accumulator import SketchedAccumulator, make_accumulator
from mixbench.engine.meter import Meter
from mixbench.engine.tap import GradientTap
from mixbench.engine.trainer import train
from mixbench.models.gpt import GPT, GPTConfig


def tap_against_autograd(cfg, device: torch.device) -> None:
    torch.manual_seed(0)
    m, batch = 8, cfg.batch_size
    model = GPT(GPTConfig(seq_len=cfg.seq_len, n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd)).to(device)
    x = torch.randint(0, 257, (batch, cfg.seq_len), device=device)
    y = torch.randint(0, 257, (batch, cfg.seq_len), device=device)
    domains = torch.arange(batch, device=device) % m

    def loss_of(rows):
        logits = model(x[rows])
        return F.cross_entropy(logits.reshape(-1, 257), y[rows].reshape(-1), reduction="sum") / y.numel()

    expected = []
    for d in range(m):
        model.zero_grad()
        loss_of(domains == d).backward()
        expected.append(model.head.weight.grad.detach().clone().reshape(-1))
    expected = torch.stack(expected)
    model.zero_grad()
    tap = GradientTap(model.head, m, Meter())
    with tap.batch(domains):
        loss = loss_of(torch.ones(batch, dtype=torch.bool, device=device))
    loss.backward()
    got = torch.from_numpy(tap.snapshot_and_reset().sums).to(device)
    tap.remove()
    diff = (got - expected).abs().max().item()
    rel = diff / expected.abs().max().item()
    print(f"tap vs autograd on {device}: max abs difference {diff:.3g}, relative {rel:.3g} "
          f"({'ok' if rel < 1e-5 else 'LARGER THAN 1e-5'})")
    torch.testing.assert_close(model.head.weight.grad.reshape(-1), expected.sum(0), rtol=1e-4, atol=1e-6)


def sketch_cost(device: torch.device) -> None:
    V, h, m = 49152, 576, 100
    sketch = make_accumulator(m, (V, h), device, 64)
    assert isinstance(sketch, SketchedAccumulator)
    s, a = torch.randn(512, V, device=device), torch.randn(512, h, device=device)
    grad = s.T @ a

    def seconds(fn, repeats=20):
        fn()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / repeats

    product, add = seconds(lambda: s.T @ a), seconds(lambda: sketch.add(0, grad))
    print(f"sketched add at V = {V}, h = {h}, m = {m} ({sketch.nbytes / 2**20:.1f} MiB): {add * 1e3:.2f} ms, "
          f"{add / product:.3f} × the head's weight-gradient product for 512 tokens ({product * 1e3:.2f} ms)")


def default_run(task_name: str, steps: int | None) -> None:
    task = registry.tasks.create(task_name)
    data = task.load()
    cfg = task.budget.override(steps=steps, device="cuda")
    history = train(data, RnB(), cfg, progress=False)
    report = history.meter.report()
    print(f"rnb on {task_name} on the GPU: {len(history.train_losses)} steps, "
          f"{len(history.train_losses) / report.train_seconds:.1f} steps/s (training steps only), "
          f"{len(history.train_losses) / history.seconds:.1f} steps/s with evaluations; "
          f"final eval loss {history.final_mean_eval_loss:.4f}")
    print(f"overhead: {report.flops_pct:.4f} % of training FLOPs, {report.seconds_pct:.3f} % of training seconds "
          f"({report.overhead_seconds:.3f} s of {report.train_seconds:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="champ")
    parser.add_argument("--steps", type=int, default=None, help="[the task's budget]")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device visible to torch; run it on a machine with a GPU")
    device = torch.device("cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(device)}")
    tap_against_autograd(registry.tasks.create(args.task).budget, device)
    sketch_cost(device)
    default_run(args.task, args.steps)


if __name__ == "__main__":
    main()
