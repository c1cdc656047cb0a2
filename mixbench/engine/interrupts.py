"""Holding Ctrl-C and termination signals back while the run's state is half-changed.

An optimiser step changes the model, the optimiser, the sampler and the step counter one after
the other; a KeyboardInterrupt raised between two of them would leave a state no checkpoint can
describe. Inside `held_signals()` the signals are only noted; they are delivered, to the
handlers that were there before, when the block ends normally. A signal whose handler is the
system's default or ignored is left alone, and so is every signal outside the main thread
(where Python runs no handler).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_SIGNALS = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
_holding = False   # held_signals() blocks nest: only the outermost one swaps the handlers


@contextmanager
def held_signals() -> Iterator[list[int]]:
    """Yields the list of signals received inside the block (in order); the caller may act on
    them before the block ends, e.g. save a checkpoint. Delivered on a normal exit; dropped when
    the block raises (the run is ending anyway, and the exception says why)."""
    global _holding
    if _holding or threading.current_thread() is not threading.main_thread():
        yield []
        return
    received: list[int] = []
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    held = [s for s, handler in previous.items() if callable(handler)]
    for number in held:
        signal.signal(number, lambda signum, frame: received.append(signum))
    _holding = True
    try:
        yield received
    finally:
        _holding = False
        for number in held:
            signal.signal(number, previous[number])
    for number in dict.fromkeys(received):   # each signal once, as the handler before would have seen it
        previous[number](number, None)
