"""Child processes that end with their parent: the ranks torchrun starts (`run --nproc N`), the
cells of `compare --jobs N`.

A parent killed outright (SIGKILL, the out-of-memory killer) stops none of its children: they
would train on, and the rerun that follows would train the same run or cell a second time beside
them. So each child asks to be told when its parent dies, and is told with SIGTERM, which a
mixbench command handles as Ctrl-C: it saves its record and checkpoint, and exits.

On Linux the kernel does the telling (prctl's PR_SET_PDEATHSIG: a child starts without it, so
it asks for it itself, first thing); elsewhere a daemon thread watches the parent's pid once a
second.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1        # linux/prctl.h
_WATCH_SECONDS = 1.0


def end_with_parent(parent: int | None = None) -> None:
    """From now on this process gets SIGTERM when its parent ends. `parent` is the pid the parent
    must have (default: the one it has): a parent that ended before this call was made is found
    here, and the signal sent at once."""
    parent = os.getppid() if parent is None else parent
    if not _death_signal(signal.SIGTERM):
        threading.Thread(target=_watch, args=(parent,), name="mixbench-parent-watch", daemon=True).start()
    if os.getppid() != parent:   # ended already: this process was handed to another parent
        os.kill(os.getpid(), signal.SIGTERM)


def _death_signal(signum: int) -> bool:
    """Ask the kernel for `signum` when the parent ends; False where it cannot (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_WATCH_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
