#!/usr/bin/env bash
# Installs a pinned MLflow (the tracking server) into a venv for test/e2e/mlflow.test.ts, which runs a real
# `mlflow server` on loopback and checks what fedge's live tracking and `fedge run export --to mlflow` write.
# Idempotent: a stamp records the pinned version, so a second run (any clone, same machine) exits in well under a
# second. Cold (PyPI, no pip cache) it took 52 s here (3.17.2; 3.18.0 lacks its mlflow-skinny on PyPI). Needs python3.
#
#   bash scripts/install-mlflow.sh          # venv in ${FEDGE_CACHE_DIR:-~/.cache/fedge}/venv-mlflow
set -euo pipefail

MLFLOW_VERSION="${FEDGE_MLFLOW_VERSION:-3.17.2}"
VENV="${FEDGE_CACHE_DIR:-$HOME/.cache/fedge}/venv-mlflow"
STAMP="$VENV/.fedge-mlflow-$MLFLOW_VERSION"
say() { echo "install-mlflow: $*"; }

if [[ -f "$STAMP" && -x "$VENV/bin/mlflow" ]]; then
  say "mlflow $MLFLOW_VERSION is already in $VENV"
  exit 0
fi
command -v python3 >/dev/null 2>&1 || { echo "install-mlflow: python3 is needed (>= 3.10) to install mlflow" >&2; exit 1; }
start=$(date +%s)
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "mlflow==$MLFLOW_VERSION"
"$VENV/bin/mlflow" --version >/dev/null
touch "$STAMP"
say "installed mlflow $MLFLOW_VERSION in $VENV in $(( $(date +%s) - start )) s"
