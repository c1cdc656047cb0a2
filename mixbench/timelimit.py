"""Waiting for a call no longer than a time limit, whatever the call does: a plugin's import that
hangs, a tracking server that trickles its answer (a library's own timeouts are often per read,
not a deadline).

The call runs in a daemon thread, and the caller waits for it at most the limit. One still running
then is left to finish on its own (Python cannot stop a thread), its result handed to `undo` if it
comes at all (a run it opened is closed again, say). A Ctrl-C meanwhile reaches the caller at
once, as it would the call.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TimeLimitExceeded(TimeoutError):
    """The call did not return within its time limit."""


class CallAborted(Exception):
    """The call raised a BaseException that is no Exception (SystemExit, KeyboardInterrupt, pytest's
    Skipped): handed on as an Exception, so that the caller tells it apart from its own Ctrl-C."""


def call_in_time(fn: Callable[[], T], seconds: float, what: str, undo: Callable[[T], object] | None = None) -> T:
    """fn()'s result, or the Exception it raised, or CallAborted for any other BaseException, or
    TimeLimitExceeded ("{what} did not answer within N s") once `seconds` have passed."""
    outcome: dict = {}
    lock = threading.Lock()

    def target():
        try:
            result, error = fn(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            result, error = None, exc
        with lock:
            if outcome.get("abandoned"):
                if undo is not None and error is None:
                    with contextlib.suppress(Exception):
                        undo(result)
                return
            outcome.update(result=result, error=error)

    thread = threading.Thread(target=target, name=f"mixbench: {what}", daemon=True)
    thread.start()
    try:
        thread.join(seconds)
    finally:   # a Ctrl-C while waiting abandons the call too
        with lock:
            if "result" not in outcome:
                outcome["abandoned"] = True
    if outcome.get("abandoned"):
        raise TimeLimitExceeded(f"{what} did not answer within {seconds:g} s")
    error = outcome["error"]
    if isinstance(error, Exception):
        raise error
    if error is not None:
        raise CallAborted(f"{type(error).__name__}: {error}") from error
    return outcome["result"]
