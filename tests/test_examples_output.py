"""Issue 29 (3): the examples print no warning they can prevent, each round's mixture once, and
why a domain shows no eval loss."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("transformers")
pytest.importorskip("datasets")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_trainer_example_shows_each_mixture_once_and_says_why_a_loss_is_missing(capsys):
    example = _example("hf_trainer_rnb")
    domains = ["a", "b", "c"]
    history = [{"step": 10, "mixing/round": 0, "mixture/a": 0.5, "mixture/b": 0.3, "mixture/c": 0.2,
                "eval_loss/a": 2.0, "eval_loss/b": 2.1},
               {"step": 20, "mixing/round": 1, "mixture/a": 0.5, "mixture/b": 0.3, "mixture/c": 0.2,
                "eval_loss/a": 1.9, "eval_loss/b": 2.0}]   # the last round chooses no new mixture
    example.show(SimpleNamespace(state=SimpleNamespace(log_history=history)), domains)
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip()[:2].isdigit()]
    assert [row[0] for row in rows] == ["10", "20"]
    assert rows[0][1:] == ["0.333"] * 3 and rows[1][1:] == ["0.500", "0.300", "0.200"]   # p_0, then round 1's
    assert "nan" not in out
    assert "no eval loss for c: no eval rows in that domain" in out


def test_naming_the_loss_keeps_transformers_quiet(caplog):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=9, n_positions=8, n_embd=8, n_layer=1, n_head=2))
    model.loss_type = "ForCausalLM"   # what both examples do
    transformers_logger = logging.getLogger("transformers")
    transformers_logger.addHandler(caplog.handler)
    try:
        assert model.loss_function is not None
    finally:
        transformers_logger.removeHandler(caplog.handler)
    assert "unrecognized" not in caplog.text
    for name in ("hf_trainer_rnb", "torch_loop_rnb"):
        assert 'model.loss_type = "ForCausalLM"' in (EXAMPLES / f"{name}.py").read_text()


@pytest.mark.slow
def test_the_loop_example_prints_each_mixture_once_and_no_warning(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, str(EXAMPLES / "torch_loop_rnb.py"), "--steps", "20",
                           "--steps-per-round", "10"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loss_type" not in done.stderr and "warning" not in done.stderr.lower(), done.stderr
    mixtures = [line.split("mixture sampled")[1] for line in done.stdout.splitlines() if "mixture sampled" in line]
    assert len(mixtures) == 2 and mixtures[0] != mixtures[1]
