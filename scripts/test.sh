#!/usr/bin/env bash
# Set up like the quickstart, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# LibreTranslate and Argos Translate, in a venv of their own, for tests/test_argos.py.
bash scripts/setup_libretranslate.sh
exec .venv/bin/python -m pytest -q "$@"
