#!/usr/bin/env bash
# The CUDA path on a machine with a GPU: the tap against autograd on CUDA, the sketched
# accumulator's cost at SmolLM2's head, and rnb on the default task with steps/s and overhead.
# Usage: bash scripts/gpu_check.sh [--task champ] [--steps N]
# Uses the project's .venv if there is one (the README's install makes it), else `python`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=${PYTHON:-python}; fi
exec "$PYTHON" benchmarks/gpu_check.py "$@"
