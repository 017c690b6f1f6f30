# syntax=docker/dockerfile:1
# fedge: one image for both CLIs, the coordinator (`fedge`) and the edge agent (`fedge-agent`).
#
#   docker build -t fedge:0.1.0 .
#   docker run --rm fedge:0.1.0 fedge serve --listen 0.0.0.0:7070 --data-dir /data
#   docker run --rm fedge:0.1.0 fedge-agent --coordinator grpc://coord:7070 --data mnist
#
# Native TensorFlow backend variant (agents train on libtensorflow instead of wasm; ~900 MB larger, linux/amd64):
#   docker build --build-arg FEDGE_NATIVE=1 --build-arg FEDGE_BACKEND=tensorflow -t fedge:0.1.0-native .
# It runs scripts/install-native-backend.sh in the build stage, with libtensorflow from the tensorflow-cpu wheel on
# PyPI, or, offline, from a directory given as the named build context `libtensorflow` (the layouts
# FEDGE_LIBTENSORFLOW_DIR accepts, README "Installing the native backend"):
#   docker buildx build --build-context libtensorflow=/opt/libtensorflow --build-arg FEDGE_NATIVE=1 ...
#
# Multi-arch (amd64 for the coordinator, arm64 for edge nodes):
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/fedge:0.1.0 --push .
# The Helm chart in deploy/k3s/fedge runs this image as uid 1000 with a read-only root filesystem.

ARG NODE_IMAGE=node:20-bookworm-slim

# Empty unless `--build-context libtensorflow=DIR` replaces it (offline native builds).
FROM scratch AS libtensorflow

# ---- build: install everything, compile TypeScript, drop dev dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV NODE_ENV=development \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
# Manifests first so the dependency layer is cached across source changes.
# (No .npmrc: npm ci --ignore-scripts below already keeps onnxruntime-node's postinstall from downloading CUDA.)
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY packages/proto/package.json packages/proto/
COPY packages/ml/package.json packages/ml/
COPY packages/coordinator/package.json packages/coordinator/
COPY packages/edge-agent/package.json packages/edge-agent/
# --ignore-scripts: the root `prepare` (tsc -b) needs the sources, which are not copied yet; it also skips
# dependency install scripts, so the optional @tensorflow/tfjs-node gets no native binding (unless FEDGE_NATIVE=1
# below builds it) and agents use the wasm backend (SIMD, with fedge's training kernels), the same on amd64 and arm64.
RUN npm ci --ignore-scripts
COPY packages/ packages/
# Compile, drop dev dependencies and sources; onnxruntime-node also ships macOS and Windows binaries (~220 MB)
# that a Linux container never loads.
RUN npx tsc -b \
 && npm prune --omit=dev --ignore-scripts \
 && npm cache clean --force \
 && rm -rf packages/*/src packages/*/tsconfig.json packages/*/dist/.tsbuildinfo \
 && rm -rf packages/coordinator/web/src packages/coordinator/web/tsconfig.json packages/coordinator/web/dist/.tsbuildinfo \
 && rm -rf node_modules/onnxruntime-node/bin/napi-v*/darwin node_modules/onnxruntime-node/bin/napi-v*/win32

# ---- optional: the native backend (FEDGE_NATIVE=1). The libraries are copied into node_modules (FEDGE_NATIVE_COPY),
# not linked to a cache; the headers, the compiler and the wheel stay in this stage. ----
ARG FEDGE_NATIVE=0
ARG FEDGE_TF_VERSION=2.21.0
COPY scripts/install-native-backend.sh scripts/
RUN --mount=type=bind,from=libtensorflow,target=/opt/libtensorflow \
    if [ "$FEDGE_NATIVE" = 1 ]; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-pip make g++ \
      && if [ -f /opt/libtensorflow/include/tensorflow/c/c_api.h ]; then export FEDGE_LIBTENSORFLOW_DIR=/opt/libtensorflow; fi \
      && FEDGE_NATIVE_COPY=1 FEDGE_CACHE_DIR=/tmp/fedge-cache FEDGE_TF_VERSION="$FEDGE_TF_VERSION" \
         bash scripts/install-native-backend.sh \
      && rm -rf node_modules/@tensorflow/tfjs-node/deps/include /tmp/fedge-cache; \
    fi \
 && rm -rf scripts

# ---- runtime: node, the compiled packages, production node_modules; runs as uid 1000 ----
FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="fedge" \
      org.opencontainers.image.description="Federated learning for fleets of edge devices: coordinator (fedge) and edge agent (fedge-agent)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# wasm unless built with the native backend (then --build-arg FEDGE_BACKEND=tensorflow: a missing backend is an error).
ARG FEDGE_BACKEND=wasm
ENV NODE_ENV=production \
    FEDGE_BACKEND=${FEDGE_BACKEND} \
    HOME=/tmp
WORKDIR /app
# The node image has user `node` with uid/gid 1000: use it (numeric, so runAsNonRoot can verify it).
COPY --from=build --chown=0:0 /app /app
# Entrypoint: `IMAGE fedge ...` or `IMAGE fedge-agent ...` run that CLI; a bare fedge subcommand
# (`IMAGE serve ...`, `IMAGE run list`) runs `fedge`; anything else (`IMAGE sh`) is executed as given.
RUN printf '%s\n' \
      '#!/bin/sh' \
      'set -e' \
      'case "${1:-}" in' \
      '  serve|run|agent|demo|model|privacy|help|--help|-h|--version|-V) set -- fedge "$@" ;;' \
      'esac' \
      'exec "$@"' \
      > /usr/local/bin/docker-entrypoint.sh \
 && chmod 0755 /usr/local/bin/docker-entrypoint.sh \
 && ln -s /app/packages/coordinator/dist/cli/main.js /usr/local/bin/fedge \
 && ln -s /app/packages/edge-agent/dist/cli/main.js /usr/local/bin/fedge-agent \
 && chmod 0755 /app/packages/coordinator/dist/cli/main.js /app/packages/edge-agent/dist/cli/main.js \
 && mkdir -p /data && chown 1000:1000 /data
USER 1000:1000
VOLUME ["/data"]
# 7070 coordinator gRPC, 1883 coordinator MQTT broker, 9464 Prometheus metrics, 8080 agent KServe-v2 inference
# (each only when asked for by a flag)
EXPOSE 7070 1883 9464 8080
# Node runs as PID 1 (the entrypoint execs it); fedge serve and fedge-agent handle SIGTERM themselves.
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["fedge", "--help"]
