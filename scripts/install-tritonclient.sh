#!/usr/bin/env bash
# Installs NVIDIA's stock Triton client (tritonclient[http,grpc], pinned, with numpy) into a venv for
# test/e2e/kserve-clients.test.ts, which runs test/kserve/triton_client.py against a serving fedge-agent: the KServe
# v2 / Open Inference Protocol over HTTP (binary tensor extension and JSON) and gRPC, with unchanged client code.
# Idempotent: a stamp records the pinned version, so a second run exits in well under a second. Cold it takes
# 17 s here (no pip cache). Needs python3.
#
#   bash scripts/install-tritonclient.sh    # venv in ${FEDGE_CACHE_DIR:-~/.cache/fedge}/venv-triton
set -euo pipefail

source "$(dirname "$0")/lib/pinned-venv.sh"
pinned_venv tritonclient "${FEDGE_TRITONCLIENT_VERSION:-2.73.0}" venv-triton 'import tritonclient.http, tritonclient.grpc, numpy' -- "tritonclient[http,grpc]==${FEDGE_TRITONCLIENT_VERSION:-2.73.0}" numpy
