"""`mixbench run --nproc N`: the same command in N processes on this machine, started through
torch.distributed.run (torchrun's own launcher); each process is one rank of the data-parallel
run (mixbench/engine/distributed.py)."""

from __future__ import annotations

import logging
import signal
import time

from mixbench.experiments.outcomes import Interrupted

log = logging.getLogger(__name__)


def launch(nproc: int, argv: list[str]) -> int:
    """`mixbench run --nproc N ...`: start `python -m mixbench ARGV` N times through
    torch.distributed.run (torchrun's own launcher, standalone rendezvous on this machine), rank
    0's output on the console; returns the exit code the ranks ended with (a user error's 2),
    without the launcher's failure report: rank 0 has said what went wrong. An interrupt (of
    the launcher, which stops the ranks, or of the ranks) raises Interrupted: every rank has
    saved what it had, and the command exits 130 as one process would."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # The launcher logs each failed rank, and each signal, at length (each module's logger set to
    # its own level): rank 0's own lines are what a user needs.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("torch.distributed.elastic", "torch.distributed.run")):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "--local-ranks-filter=0",
                                         "-m", "mixbench", *argv])
    started = time.perf_counter()
    try:
        run(args)
    except ChildFailedError as exc:
        # A rank that exited by itself (a user error's 2, an interrupt's 130) before one the
        # launcher then stopped with a signal: rank 0's if it did (its output is what the user
        # saw), else the first. Every rank checks its input alike, so whichever exits first
        # gets the others terminated, rank 0 among them.
        failures = sorted(exc.failures.items(),
                          key=lambda item: (item[1].exitcode <= 0, item[0] != 0, item[1].timestamp))
        code = failures[0][1].exitcode if failures else 1
        log.debug("ranks failed after %.1f s: %s", time.perf_counter() - started,
                  {rank: f.exitcode for rank, f in failures})
        if code > 0:
            return code
        if -code in _INTERRUPTS:   # stopped by Ctrl-C, SIGTERM or SIGHUP before they could exit by themselves
            raise Interrupted(None, f"the ranks were stopped by {signal.Signals(-code).name}") from None
        return 128 - code   # a death by another signal -s (SIGKILL, ...) is 128 + s, as a shell says
    except SignalException as exc:   # the launcher itself was interrupted; it has stopped the ranks, which saved
        raise Interrupted(None, f"the launcher got {signal.Signals(int(exc.sigval)).name}") from None
    return 0


_INTERRUPTS = {int(getattr(signal, name)) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)}
