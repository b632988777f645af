#!/usr/bin/env bash
# Set up, then prepare → train → translate → evaluate on the built-in corpus.
# The last line printed is the path of report.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PY=.venv/bin/python
cache=$($PY -m nmt.prepare | tail -n 1)
$PY -m nmt.train run_dir=runs/quickstart >&2
$PY -m nmt.translate checkpoint=runs/quickstart/checkpoints/best.pt input="$cache/test.src.txt" \
  output=runs/quickstart/translations/test.de decode.beam_size=5 >&2
$PY -m nmt.evaluate hyp=runs/quickstart/translations/test.de ref="$cache/test.tgt.txt" \
  src="$cache/test.src.txt" report_dir=runs/quickstart/reports | tail -n 1
