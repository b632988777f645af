#!/usr/bin/env bash
# Creates .venv with nmt installed. Without a GPU the CPU build of torch goes in first,
# so pip does not pull the multi-gigabyte CUDA build for `torch` in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    .venv/bin/pip install -q torch
  else
    # 2.13.0's CPU wheel lies on this project's machines; elsewhere the CPU index serves it.
    .venv/bin/pip install -q torch==2.13.0 2>/dev/null \
      || .venv/bin/pip install -q torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi
.venv/bin/pip install -q -e ".[test]"
