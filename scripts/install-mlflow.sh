#!/usr/bin/env bash
# Installs a pinned MLflow (the tracking server) into a venv for test/e2e/mlflow.test.ts, which runs a real
# `mlflow server` on loopback and checks what fedge's live tracking and `fedge run export --to mlflow` write.
# Idempotent: a stamp records the pinned version, so a second run (any clone, same machine) exits in well under a
# second. Cold (PyPI, no pip cache) it took 52 s here (3.17.2; 3.18.0 lacks its mlflow-skinny on PyPI). Needs python3.
#
#   bash scripts/install-mlflow.sh          # venv in ${FEDGE_CACHE_DIR:-~/.cache/fedge}/venv-mlflow
set -euo pipefail

source "$(dirname "$0")/lib/pinned-venv.sh"
pinned_venv mlflow "${FEDGE_MLFLOW_VERSION:-3.17.2}" venv-mlflow 'import mlflow' -- "mlflow==${FEDGE_MLFLOW_VERSION:-3.17.2}"
