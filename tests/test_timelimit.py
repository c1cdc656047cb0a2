"""mixbench.timelimit: a call waited for at most its limit, whatever it does."""

from __future__ import annotations

import threading

import pytest

from mixbench.timelimit import CallAborted, TimeLimitExceeded, call_in_time


def test_a_call_in_time_gives_its_result_or_its_exception():
    assert call_in_time(lambda: 42, 5, "the answer") == 42
    with pytest.raises(ValueError, match="bad"):
        call_in_time(lambda: (_ for _ in ()).throw(ValueError("bad")), 5, "a failure")


def test_a_call_past_its_limit_is_left_behind_and_its_late_result_undone():
    release, undone = threading.Event(), []
    with pytest.raises(TimeLimitExceeded, match="the slow one did not answer within 0.2 s"):
        call_in_time(lambda: release.wait(30) and "opened", 0.2, "the slow one", undo=undone.append)
    release.set()   # it ends now, after the caller stopped waiting: what it made is handed to undo
    for _ in range(100):
        if undone:
            break
        threading.Event().wait(0.05)
    assert undone == ["opened"]


@pytest.mark.parametrize("raised", [KeyboardInterrupt("its own"), SystemExit("its own")])
def test_a_base_exception_of_the_call_comes_back_as_an_exception(raised):
    def call():
        raise raised

    with pytest.raises(CallAborted, match=f"{type(raised).__name__}: its own"):
        call_in_time(call, 5, "a plugin")
