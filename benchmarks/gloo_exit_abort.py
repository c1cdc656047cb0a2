"""How often a 2-rank gloo job aborts at exit ("terminate called without an active exception",
SIGABRT) when torch.distributed.nn is imported after the group formed, as DDP's constructor
does: leaving with torch's destroy_process_group alone, or with mixbench's leave_process_group.

Each rank leaves two all-reduces in flight, so that a gloo worker still holds a tensor Python
has dropped: the rare timing of a real run (a worker releasing its last work after the main
thread moved on), made common. If the group outlives the interpreter, that worker takes the
GIL during finalisation and the process aborts. Prints one JSON line.

    .venv/bin/python benchmarks/gloo_exit_abort.py --pairs 10
"""

from __future__ import annotations

import argparse
import importlib
import json
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mixbench.engine.distributed import leave_process_group


def _rank(rank: int, port: int, leave: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    importlib.import_module("torch.distributed.nn")   # after the group formed: it binds the group as a default

    dist.all_reduce(torch.ones(10), async_op=True)
    dist.all_reduce(torch.ones(1_000_000), async_op=True)
    leave_process_group() if leave == "mixbench" else dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def aborted_pairs(leave: str, pairs: int) -> int:
    aborted = 0
    for _ in range(pairs):
        try:
            mp.spawn(_rank, args=(_free_port(), leave), nprocs=2, join=True)
        except mp.ProcessExitedException:
            aborted += 1
    return aborted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps({leave: f"{aborted_pairs(leave, args.pairs)}/{args.pairs} aborted"
                      for leave in ("torch", "mixbench")}))


if __name__ == "__main__":
    main()
