#!/usr/bin/env bash
# Installs a pinned Helm v3 as .tools/bin/helm, built from source with the Go toolchain
# (`go install`, through the Go module proxy). Used by test/chart/chart.test.ts and .ci/run.
# The binary is built once into ~/.cache/fedge/helm-VERSION (FEDGE_CACHE_DIR) and linked into each clone, so a fresh
# clone on the same machine does not rebuild it. Idempotent.
#
#   bash scripts/install-helm.sh            # install or confirm
#   HELM_VERSION=v3.x.y bash scripts/install-helm.sh   # another version (the test only needs Helm 3)
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION="${HELM_VERSION:-v3.21.4}"
BIN_DIR="$PWD/.tools/bin"
HELM="$BIN_DIR/helm"
CACHE_DIR="${FEDGE_CACHE_DIR:-$HOME/.cache/fedge}/helm-$HELM_VERSION"
CACHED="$CACHE_DIR/helm"

if ! command -v go >/dev/null 2>&1; then
  echo "install-helm: the Go toolchain is required (go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION)" >&2
  exit 1
fi

# `go version -m` reads the module version embedded in the binary; `helm version` of a go-installed helm
# may report only the minor version, so this is the reliable check.
is_version() { [[ -x "$1" ]] && go version -m "$1" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+helm\.sh/helm/v3[[:space:]]+${HELM_VERSION//./\\.}([[:space:]]|$)"; }
if is_version "$HELM"; then
  echo "install-helm: $HELM is already helm $HELM_VERSION"
  exit 0
fi
if is_version "$CACHED"; then
  mkdir -p "$BIN_DIR"
  ln -sf "$CACHED" "$HELM"
  echo "install-helm: linked $HELM -> $CACHED (helm $HELM_VERSION, cached)"
  exit 0
fi

echo "install-helm: building helm $HELM_VERSION with $(go version) (a few minutes on a cold module cache)"
start=$(date +%s)
mkdir -p "$BIN_DIR" "$CACHE_DIR"
# CGO off: a static binary, no C toolchain needed. The -X flags give `helm version` the full version, as
# helm's own Makefile does (otherwise it reports only the minor, e.g. v3.21).
GOBIN="$CACHE_DIR" CGO_ENABLED=0 go install \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
ln -sf "$CACHED" "$HELM"
echo "install-helm: installed $CACHED, linked as $HELM ($(($(date +%s) - start)) s)"
"$HELM" version --short || true
