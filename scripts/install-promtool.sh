#!/usr/bin/env bash
# Installs a pinned promtool (Prometheus' own linter) as .tools/bin/promtool, built from source with the Go
# toolchain (`go install`, through the Go module proxy). Used by test/e2e/metrics-lint.test.ts, which runs
# `promtool check metrics` on a real coordinator's and agent's /metrics, and by .ci/run.
# The binary is built once into ~/.cache/fedge/promtool-VERSION (FEDGE_CACHE_DIR) and linked into each clone. Idempotent.
#
#   bash scripts/install-promtool.sh                               # install or confirm
#   PROMETHEUS_VERSION=v0.3xx.y bash scripts/install-promtool.sh   # another release (Prometheus 3.x is module v0.3xx)
set -euo pipefail
cd "$(dirname "$0")/.."

# The Go module version of Prometheus: v0.316.0 is the Prometheus 3.x release tagged v3.16.0.
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
MODULE=github.com/prometheus/prometheus
BIN_DIR="$PWD/.tools/bin"
PROMTOOL="$BIN_DIR/promtool"
CACHE_DIR="${FEDGE_CACHE_DIR:-$HOME/.cache/fedge}/promtool-$PROMETHEUS_VERSION"
CACHED="$CACHE_DIR/promtool"

if ! command -v go >/dev/null 2>&1; then
  echo "install-promtool: the Go toolchain is required (go install $MODULE/cmd/promtool@$PROMETHEUS_VERSION)" >&2
  exit 1
fi

# `go version -m` reads the module version embedded in the binary (promtool --version of a go-installed build
# does not carry the release number).
is_version() { [[ -x "$1" ]] && go version -m "$1" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+${MODULE//./\\.}[[:space:]]+${PROMETHEUS_VERSION//./\\.}([[:space:]]|$)"; }
if is_version "$PROMTOOL"; then
  echo "install-promtool: $PROMTOOL is already promtool $PROMETHEUS_VERSION"
  exit 0
fi
if is_version "$CACHED"; then
  mkdir -p "$BIN_DIR"
  ln -sf "$CACHED" "$PROMTOOL"
  echo "install-promtool: linked $PROMTOOL -> $CACHED (promtool $PROMETHEUS_VERSION, cached)"
  exit 0
fi

echo "install-promtool: building promtool $PROMETHEUS_VERSION with $(go version) (a few minutes on a cold module cache)"
start=$(date +%s)
mkdir -p "$BIN_DIR" "$CACHE_DIR"
# CGO off: a static binary, no C toolchain needed.
GOBIN="$CACHE_DIR" CGO_ENABLED=0 go install -ldflags "-s -w" "$MODULE/cmd/promtool@$PROMETHEUS_VERSION"
ln -sf "$CACHED" "$PROMTOOL"
echo "install-promtool: installed $CACHED, linked as $PROMTOOL ($(($(date +%s) - start)) s)"
