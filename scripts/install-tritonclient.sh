#!/usr/bin/env bash
# Installs NVIDIA's stock Triton client (tritonclient[http,grpc], pinned, with numpy) into a venv for
# test/e2e/kserve-clients.test.ts, which runs test/kserve/triton_client.py against a serving fedge-agent: the KServe
# v2 / Open Inference Protocol over HTTP (binary tensor extension and JSON) and gRPC, with unchanged client code.
# Idempotent: a stamp records the pinned version, so a second run exits in well under a second. Cold it takes
# 17 s here (no pip cache). Needs python3.
#
#   bash scripts/install-tritonclient.sh    # venv in ${FEDGE_CACHE_DIR:-~/.cache/fedge}/venv-triton
set -euo pipefail

TRITON_VERSION="${FEDGE_TRITONCLIENT_VERSION:-2.73.0}"
VENV="${FEDGE_CACHE_DIR:-$HOME/.cache/fedge}/venv-triton"
STAMP="$VENV/.fedge-tritonclient-$TRITON_VERSION"
say() { echo "install-tritonclient: $*"; }

if [[ -f "$STAMP" && -x "$VENV/bin/python" ]]; then
  say "tritonclient $TRITON_VERSION is already in $VENV"
  exit 0
fi
command -v python3 >/dev/null 2>&1 || { echo "install-tritonclient: python3 is needed to install tritonclient" >&2; exit 1; }
start=$(date +%s)
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "tritonclient[http,grpc]==$TRITON_VERSION" numpy
"$VENV/bin/python" -c "import tritonclient.http, tritonclient.grpc, numpy"
touch "$STAMP"
say "installed tritonclient $TRITON_VERSION in $VENV in $(( $(date +%s) - start )) s"
