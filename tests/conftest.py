import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest


def default_signals() -> None:
    """For a child process (preexec_fn): SIGINT, SIGTERM and SIGHUP at their defaults, as for a
    command typed at a terminal, whatever the test runner inherited (a background shell ignores
    SIGINT, `nohup` ignores SIGHUP, and children inherit both)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def mixbench_command() -> list[str]:
    """The installed console script, as a user would call it."""
    script = Path(sys.executable).with_name("mixbench")
    return [str(script)] if script.exists() else [shutil.which("mixbench") or "mixbench"]


@pytest.fixture
def run_cli(tmp_path):
    """Run `mixbench ARGS` in a fresh directory with its own MLflow database."""

    def run(*args, cwd=None, env=None):
        full_env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db",
                        MIXBENCH_CACHE=str(tmp_path / "cache"))
        full_env.update(env or {})
        return subprocess.run(mixbench_command() + list(args), cwd=cwd or tmp_path, env=full_env,
                              capture_output=True, text=True, timeout=600)

    return run


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Embedding caches of one test never serve another."""
    monkeypatch.setenv("MIXBENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory):
    """One cache folder for every SmolLM2 test: its first load converts the GGUF file (15 s or
    more), once per session rather than once per test file."""
    return tmp_path_factory.mktemp("smollm2-cache")
