"""How close does the sketched accumulator keep R&B to the exact one at a real vocabulary?

At SmolLM2-135M's head (V = 49,152, h = 576) and m = 100 domains, exact per-domain sums take
m·V·h·4 bytes = 11 GB; the sketch gets 64 MB. Per round, every domain's head gradient is built as
an LM head's is, G_i = S_iᵀ A_i over its tokens: hidden states A (a shared direction, a domain
direction and noise, normalised as a final layer norm leaves them), logits from a low-rank map
plus a Zipf log-frequency bias, S = softmax(logits) − onehot(next token), next tokens drawn 70 %
from a global Zipf law and 30 % from the domain's own. The exact G q is computed in float64 in a
second pass over the same gradients (the m exact sums do not fit in memory either).

Prints, over the rounds: the sketch's relative error in G q, the L1 distance between R&B's
mixture from the sketch and from the exact sums, the accumulator memory, and the time of one
`add` as a fraction of the head's weight-gradient product for one example's tokens.

Usage: python benchmarks/sketch_accuracy.py [--rounds 20] [--tokens 16] [--domains 100]
       [--memory-mib 64] [--vocab 49152] [--hidden 576] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from mixbench.algorithms.rnb import balance_scores, mixture_from_scores

from mixbench.engine.accumulator import MIB, SketchedAccumulator, exact_bytes, make_accumulator

ZIPF = 1.1
LOCAL_SHARE = 0.3      # share of a domain's next tokens drawn from its own Zipf law
LOGIT_RANK = 32


class HeadGradients:
    """Deterministic per-(round, domain) LM-head gradients, regenerated on demand."""

    def __init__(self, vocab: int, hidden: int, domains: int, tokens: int, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.vocab, self.hidden, self.tokens = vocab, hidden, tokens
        self.logit_out = torch.randn(vocab, LOGIT_RANK, generator=gen) * (2 / LOGIT_RANK ** 0.5)
        self.logit_in = torch.randn(hidden, LOGIT_RANK, generator=gen) / hidden ** 0.5
        self.by_frequency = torch.randperm(vocab, generator=gen)          # token of each frequency rank
        self.bias = torch.empty(vocab)
        self.bias[self.by_frequency] = -ZIPF * torch.log(torch.arange(1, vocab + 1, dtype=torch.float32))
        self.shared = torch.randn(hidden, generator=gen)
        self.direction = torch.randn(domains, hidden, generator=gen) * 0.7
        self.own_order = [torch.randperm(vocab, generator=gen) for _ in range(domains)]
        zipf = torch.arange(1, vocab + 1, dtype=torch.float32) ** -ZIPF
        self.zipf = zipf / zipf.sum()

    def __call__(self, round_index: int, domain: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(1_000_003 * round_index + domain)
        n = self.tokens
        a = self.shared + self.direction[domain] + torch.randn(n, self.hidden, generator=gen)
        a = a / a.norm(dim=1, keepdim=True) * self.hidden ** 0.5
        s = torch.softmax(self.bias + (a @ self.logit_in) @ self.logit_out.T, dim=1)
        rank = torch.multinomial(self.zipf, n, replacement=True, generator=gen)
        own = torch.rand(n, generator=gen) < LOCAL_SHARE
        nxt = torch.where(own, self.own_order[domain][rank], self.by_frequency[rank])
        s[torch.arange(n), nxt] -= 1.0
        return s.T @ a                                                    # (V, h)


def one_round(heads: HeadGradients, accumulator, round_index: int, q: np.ndarray, lam: float):
    """(relative error of G q, L1 distance of the mixtures) for one round."""
    m = len(q)
    counts = np.full(m, heads.tokens)
    direction = torch.zeros(heads.vocab, heads.hidden, dtype=torch.float64)   # Mᵀ q, exact
    accumulator.reset()
    for i in range(m):
        grad = heads(round_index, i)
        accumulator.add(i, grad)
        direction += (q[i] / counts[i]) * grad.double()
    exact = np.array([float((heads(round_index, i).double() * direction).sum()) / counts[i] for i in range(m)])
    sketched = balance_scores(accumulator.snapshot().sums, counts, q)
    error = np.linalg.norm(sketched - exact) / np.linalg.norm(exact)
    l1 = np.abs(mixture_from_scores(sketched, lam) - mixture_from_scores(exact, lam)).sum()
    return error, l1


def add_cost(vocab: int, hidden: int, accumulator, tokens: int, repeats: int = 5) -> tuple[float, float, float]:
    """Seconds of: the head's weight-gradient product for `tokens` tokens, one sketched add, one
    exact add (a dense pass over V × h)."""
    s, a = torch.randn(tokens, vocab), torch.randn(tokens, hidden)
    grad, total = s.T @ a, torch.zeros(vocab, hidden)

    def seconds(fn):
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - start) / repeats

    return seconds(lambda: s.T @ a), seconds(lambda: accumulator.add(0, grad)), seconds(lambda: total.add_(grad))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=16, help="tokens per domain per round")
    parser.add_argument("--domains", type=int, default=100)
    parser.add_argument("--memory-mib", type=float, default=64)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--hidden", type=int, default=576)
    parser.add_argument("--lam", type=float, default=3.0)
    parser.add_argument("--example-tokens", type=int, default=512, help="tokens of one example, for the cost")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: timings that a busy machine does not distort)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    m, shape = args.domains, (args.vocab, args.hidden)
    accumulator = make_accumulator(m, shape, "cpu", args.memory_mib)
    if not isinstance(accumulator, SketchedAccumulator):
        raise SystemExit("the exact sums fit this budget: nothing to sketch (lower --memory-mib)")
    print(f"V = {args.vocab}, h = {args.hidden}, m = {m}: exact sums {exact_bytes(m, shape) / MIB:.0f} MiB; "
          f"sketch {accumulator.rows} × {args.hidden} per domain, {accumulator.nbytes / MIB:.1f} MiB in all "
          f"({accumulator.groups} shift groups)")
    product, sketch_add, dense_add = add_cost(*shape, accumulator, args.example_tokens)
    print(f"one add, as a fraction of the head's weight-gradient product for {args.example_tokens} tokens "
          f"({product * 1e3:.0f} ms, {torch.get_num_threads()} threads): sketched {sketch_add / product:.3f}, "
          f"exact {dense_add / product:.3f}")

    heads = HeadGradients(args.vocab, args.hidden, m, args.tokens)
    errors, distances = [], []
    for r in range(args.rounds):
        started = time.perf_counter()
        q = np.random.default_rng(r).dirichlet(np.ones(m))
        error, l1 = one_round(heads, accumulator, r, q, args.lam)
        errors.append(error)
        distances.append(l1)
        print(f"round {r:2d}: G q relative error {error:.4f}, mixture L1 {l1:.4f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"median over {args.rounds} rounds: G q relative error {np.median(errors):.4f} (target ≤ 0.05), "
          f"mixture L1 {np.median(distances):.4f} (target ≤ 0.02); max {max(errors):.4f} / {max(distances):.4f}")


if __name__ == "__main__":
    main()
