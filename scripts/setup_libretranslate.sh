#!/usr/bin/env bash
# Creates .venv-libretranslate: LibreTranslate 1.9.6 and the Argos Translate it installs (argos-translate-lt
# 1.12.1), for tests/test_argos.py, which runs them as subprocesses. They pin numpy<2, packaging 23.1,
# requests 2.31, flask 2.2 and more, which would downgrade .venv's, so they get a venv of their own, without
# torch. Its CTranslate2 is nmt's version, so it reads the exports nmt writes. Run scripts/setup_env.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LIBRETRANSLATE=1.9.6
NMT_PYTHON=${NMT_PYTHON:-.venv/bin/python}  # the Python that runs nmt
CT2=$("$NMT_PYTHON" -c "import importlib.metadata as m; print(m.version('ctranslate2'))")
if [ ! -x .venv-libretranslate/bin/python ]; then
  "$PYTHON" -m venv .venv-libretranslate
fi
if ! .venv-libretranslate/bin/python -c "import importlib.metadata as m, sys
sys.exit((m.version('libretranslate'), m.version('ctranslate2')) != ('$LIBRETRANSLATE', '$CT2'))" 2>/dev/null; then
  .venv-libretranslate/bin/pip install -q "libretranslate==$LIBRETRANSLATE" "ctranslate2==$CT2"
fi
