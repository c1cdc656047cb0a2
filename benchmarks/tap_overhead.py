"""How much does the gradient tap cost? Times the default model's training step with and without
it, on the same batches, and prints the ratio. Usage: python benchmarks/tap_overhead.py [--steps N]
[--domains M] [--batch-size B]"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from mixbench.tasks.champ import Champ

from mixbench.engine.meter import Meter
from mixbench.engine.tap import GradientTap
from mixbench.models.gpt import GPT, GPTConfig
from mixbench.workloads.text import IGNORE


def time_steps(model, batches, tap: GradientTap | None) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    elapsed = 0.0
    for i, (x, y, domains) in enumerate(batches):
        start = time.perf_counter()
        with tap.batch(domains) if tap is not None else nullcontext():
            logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= 3:  # the first steps warm up allocators and kernels
            elapsed += time.perf_counter() - start
    return elapsed / (len(batches) - 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--domains", type=int, default=72)
    parser.add_argument("--batch-size", type=int, default=Champ.budget.batch_size)
    args = parser.parse_args()
    b = Champ.budget
    cfg = GPTConfig(seq_len=b.seq_len, n_layer=b.n_layer, n_head=b.n_head, n_embd=b.n_embd)
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(args.steps + 3):
        x = torch.randint(0, 256, (args.batch_size, b.seq_len), generator=gen)
        y = torch.roll(x, -1, dims=1)
        y[:, : b.seq_len // 2] = IGNORE
        batches.append((x, y, torch.randint(0, args.domains, (args.batch_size,), generator=gen)))

    torch.manual_seed(0)
    plain = time_steps(GPT(cfg), batches, None)
    torch.manual_seed(0)
    model, meter = GPT(cfg), Meter()
    tapped = time_steps(model, batches, GradientTap(model.head, args.domains, meter))
    print(f"model {cfg}, batch {args.batch_size}, {args.domains} domains, {args.steps} timed steps")
    print(f"step without tap: {plain * 1e3:8.2f} ms")
    print(f"step with tap:    {tapped * 1e3:8.2f} ms   ratio {tapped / plain:.3f}")
    print(f"of which accumulator adds: {meter.total_seconds('tap') / (args.steps + 3) * 1e3:.2f} ms/step")


if __name__ == "__main__":
    main()
