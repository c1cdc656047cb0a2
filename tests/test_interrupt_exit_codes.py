"""Every interrupt of every command ends it with exit code 130, whatever the signal, however often
it comes, whichever command it reaches: never click's "Aborted!" and 1, never 143 or 129.

Before: a command with nothing to save (`theory`, `list`, `report`) turned Ctrl-C into "Aborted!"
and exit 1; a SIGTERM repeated while a run shut down found Python's default action back (it
restores them as it finalises) and ended the process as 143; SIGTERM to the `--nproc` launcher
ended it as 143. Real signals on real subprocesses.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.test_signals import ENDLESS, start


def signal_until_it_ends(proc, signum: int, every: float = 0.1, timeout: float = 120) -> str:
    """Send `signum` again and again until `proc` ends; its stderr."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        proc.send_signal(signum)
        time.sleep(every)
    return proc.communicate(timeout=30)[1]


def wait_for_file(path, proc, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.1)


def test_an_interrupted_command_with_nothing_to_save_exits_130(tmp_path):
    """`theory` (a minute of checks) saves nothing; Ctrl-C'd, it says so in one line (SIGTERM and
    SIGHUP reach a command as the same KeyboardInterrupt: the repeated SIGTERM below)."""
    proc = start(tmp_path, "theory")
    time.sleep(4)   # past the imports: inside the checks
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Aborted!" not in err and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "interrupted"


def test_a_sigterm_repeated_until_the_run_has_ended_still_exits_130(tmp_path):
    proc = start(tmp_path, "run", "--algo", "stratified", *ENDLESS, "--no-mlflow", "--out", "out")
    wait_for_file(tmp_path / "out/synthetic/stratified/original/seed0.ckpt", proc)
    err = signal_until_it_ends(proc, signal.SIGTERM)
    assert proc.returncode == 130 and "Traceback" not in err, err
    result = json.loads((tmp_path / "out/synthetic/stratified/original/seed0.json").read_text())
    assert result["status"] == "interrupted"


@pytest.mark.slow
def test_sigterm_to_the_nproc_launcher_exits_130_with_the_record_kept(tmp_path):
    proc = start(tmp_path, "run", "--algo", "stratified", *ENDLESS, "--batch-size", "4", "--nproc", "2",
                 "--no-mlflow", "--out", "out")
    wait_for_file(tmp_path / "out/synthetic/stratified/original/seed0.ckpt", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    result = json.loads((tmp_path / "out/synthetic/stratified/original/seed0.json").read_text())
    assert result["status"] == "interrupted"
