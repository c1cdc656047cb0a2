"""The results schema: one JSON per run, the same for every strategy and task."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1


def result_path(out_dir: Path, task: str, algo: str, domains: str, seed: int) -> Path:
    """The fixed place of a run's results: <out>/<task>/<algo>/<domains>/seed<n>.json."""
    return Path(out_dir) / task / algo / domains / f"seed{seed}.json"


def build_result(*, algo, strategy, task_name, task_info, cfg, history, status, error=None,
                 started_at, domains_info=None) -> dict:
    report = history.meter.report() if history.meter is not None else None
    domains = list(history.domains)
    return {
        "schema_version": SCHEMA_VERSION,
        "status": status,            # finished | interrupted | failed
        "error": error,
        "started_at": started_at,
        "finished_at": _now(),
        "strategy": {"name": algo, "params": strategy.get_params(), "extras": strategy.report_extras()},
        "task": {"name": task_name, **asdict(task_info), "num_domains": len(domains)},
        "domains": {**(domains_info or {"method": "original"}), "names": domains},
        "seed": cfg.seed,
        "config": asdict(cfg),
        "environment": environment(history.device),
        "metrics": {
            "initial_mean_eval_loss": history.initial_mean_eval_loss,
            "final_mean_eval_loss": history.final_mean_eval_loss,
            "initial_eval_losses": dict(zip(domains, history.initial_eval_losses)),
            "final_eval_losses": dict(zip(domains, history.final_eval_losses)),
            # The same eval rows scored by the task's original domains: comparable across runs on
            # different domain definitions (for a run on original domains it equals the above).
            "initial_reference_eval_loss": history.initial_reference_eval_loss,
            "final_reference_eval_loss": history.final_reference_eval_loss,
            "final_reference_eval_losses": dict(zip(history.reference_domains,
                                                    history.final_reference_eval_losses)),
            "reference_proportions": dict(zip(history.reference_domains, history.reference_proportions)),
            # Task metrics beyond the loss (image-text: zero-shot retrieval), overall and per domain.
            "initial_eval_metrics": history.initial_eval_metrics,
            "final_eval_metrics": history.final_eval_metrics,
            "final_domain_eval_metrics": {
                name: dict(zip(domains, values))
                for name, values in (history.rounds[-1].domain_eval_metrics if history.rounds else {}).items()},
            "steps_done": len(history.train_losses),
            "tokens_trained": history.tokens_trained,
            "num_params": history.num_params,
            "train_seconds": history.seconds,
            "eval_rows": history.eval_rows,   # indices into the task's eval split, for comparability
        },
        "overhead": _overhead(report, strategy, history.shape),
        "eval_proportions": history.eval_proportions,
        "mixture": {
            "per_round": [r.mixture for r in history.rounds],
            "final": history.final_mixture,
        },
        "rounds": [asdict(r) for r in history.rounds],
        "train_losses": history.train_losses,
    }


def _overhead(report, strategy, shape) -> dict | None:
    """The meter's figures, and the paper's App. D formula for the same run beside them."""
    if report is None:
        return None
    formula = strategy.paper_overhead_flops(shape) if shape is not None else None
    return {**report.to_dict(), "paper_formula_flops": formula,
            "measured_over_formula": report.overhead_flops / formula if formula else None}


def write_json(path: Path, payload: dict) -> None:
    """Atomic write (temp file + rename), so a crash never leaves half a results file."""
    write_text(path, json.dumps(_json_safe(payload), indent=2, allow_nan=False) + "\n")


def write_text(path: Path, text: str) -> None:
    """Atomic text write (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def environment(device: str) -> dict:
    return {
        "mixbench": _version("mixbench"),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "git_hash": git_hash(),
    }


def git_hash() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_safe(value):
    """NaN and inf become null (JSON has neither); numpy types become Python ones."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
