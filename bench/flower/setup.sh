#!/usr/bin/env bash
# Creates bench/flower/.venv with a pinned Flower (flwr) and numpy for bench/flower.mjs.
# Usage: bash bench/flower/setup.sh        (re-running it is harmless)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
FLWR_VERSION="${FLWR_VERSION:-1.41.0}"
NUMPY_VERSION="${NUMPY_VERSION:-2.2.6}"
if [ ! -x "$HERE/.venv/bin/python" ]; then
  "$PY" -m venv "$HERE/.venv"
fi
"$HERE/.venv/bin/python" -m pip install --quiet --upgrade pip
"$HERE/.venv/bin/python" -m pip install --quiet "flwr==$FLWR_VERSION" "numpy==$NUMPY_VERSION"
"$HERE/.venv/bin/python" -c 'import flwr, numpy; print("flwr", flwr.__version__, "numpy", numpy.__version__)'
