#!/usr/bin/env bash
# Gives @tensorflow/tfjs-node (the agents' native training backend) its libtensorflow and native addon WITHOUT the
# package's own installer, which downloads libtensorflow from Google's storage at install time (fails offline, and
# npm ci here skips that script: allowScripts in package.json).
#
# libtensorflow comes from, in order:
#   1. FEDGE_LIBTENSORFLOW_DIR: a directory with the shared libraries and the C headers, for air-gapped sites. Either
#      the layout of Google's libtensorflow C tarball (lib/libtensorflow.so.2, lib/libtensorflow_framework.so.2,
#      include/tensorflow/c/...) or that of the tensorflow-cpu wheel's `tensorflow/` directory
#      (libtensorflow_cc.so.2, libtensorflow_framework.so.2, include/). Copy the cache dir made by (2) to reuse it.
#   2. the tensorflow-cpu==FEDGE_TF_VERSION wheel from PyPI (`pip download --no-deps`, ~270 MB), whose
#      libtensorflow_cc.so.2 exports the C and eager APIs tfjs-node binds to; extracted once (~1.1 GB).
# The addon is built with npm's bundled node-gyp against the local Node headers (needs python3, make, g++) and cached
# by tfjs-node version, Node ABI, platform and TensorFlow version, so a second run (any clone, same machine) only
# links files: seconds. Everything is cached under FEDGE_CACHE_DIR (default ~/.cache/fedge). Idempotent.
#
#   bash scripts/install-native-backend.sh            # install (or confirm) and check that tfjs-node loads
#   FEDGE_LIBTENSORFLOW_DIR=/opt/libtensorflow bash scripts/install-native-backend.sh
#   FEDGE_NATIVE_COPY=1 bash scripts/install-native-backend.sh   # copy the libraries into node_modules instead of
#                                                                 # linking the cache (container images)
set -euo pipefail
cd "$(dirname "$0")/.."

TF_VERSION="${FEDGE_TF_VERSION:-2.21.0}"
CACHE_ROOT="${FEDGE_CACHE_DIR:-$HOME/.cache/fedge}"
say() { echo "install-native-backend: $*"; }
die() { echo "install-native-backend: error: $*" >&2; exit 1; }
start=$(date +%s)

PKG_DIR="$(node -p "require('path').dirname(require.resolve('@tensorflow/tfjs-node/package.json', { paths: ['packages/ml'] }))" 2>/dev/null)" \
  || die "@tensorflow/tfjs-node is not in node_modules; run \`npm ci\` first (it is an optional dependency of @fedge/ml)"
TFJS_NODE_VERSION="$(node -p "require('$PKG_DIR/package.json').version")"
NAPI_DIR="$PKG_DIR/lib/napi-v8" # package.json "binary": lib/napi-v{napi_build_version}; tfjs-node builds for N-API 8
read -r NODE_ABI PLATFORM ARCH < <(node -p "[process.versions.modules, process.platform, process.arch].join(' ')")
[[ "$PLATFORM" == linux ]] || die "only Linux is supported by this script (found $PLATFORM); elsewhere install @tensorflow/tfjs-node with its own installer"

# ---- 1. libtensorflow: a directory with lib/ (the .so files and the names the linker and loader look for) and include/ ----
# Normalises a directory holding libtensorflow(_cc).so.2 + libtensorflow_framework.so.2 into $2/lib with every
# name needed: -ltensorflow at link time, each library's SONAME at load time.
link_libs() {
  local src="$1" dst="$2/lib" main
  for main in "$src/lib/libtensorflow_cc.so.2" "$src/libtensorflow_cc.so.2" "$src/lib/libtensorflow.so.2" "$src/libtensorflow.so.2" ""; do
    [[ -z "$main" || -f "$main" ]] && break
  done
  [[ -n "$main" ]] || die "no libtensorflow_cc.so.2 or libtensorflow.so.2 in $src (or $src/lib)"
  local fw; fw="$(dirname "$main")/libtensorflow_framework.so.2"
  [[ -f "$fw" ]] || die "no libtensorflow_framework.so.2 next to $main"
  mkdir -p "$dst"
  ln -sfn "$main" "$dst/$(basename "$main")"
  [[ "$(basename "$main")" == libtensorflow.so.2 ]] || ln -sfn "$(basename "$main")" "$dst/libtensorflow.so.2"
  ln -sfn libtensorflow.so.2 "$dst/libtensorflow.so"
  ln -sfn "$fw" "$dst/libtensorflow_framework.so.2"
  ln -sfn libtensorflow_framework.so.2 "$dst/libtensorflow_framework.so"
}

if [[ -n "${FEDGE_LIBTENSORFLOW_DIR:-}" ]]; then
  SRC="$(cd "$FEDGE_LIBTENSORFLOW_DIR" && pwd)" || die "FEDGE_LIBTENSORFLOW_DIR=$FEDGE_LIBTENSORFLOW_DIR is not a directory"
  [[ -f "$SRC/include/tensorflow/c/c_api.h" ]] || die "FEDGE_LIBTENSORFLOW_DIR=$SRC has no include/tensorflow/c/c_api.h (it needs the C headers as well as the libraries)"
  LIBTF="$CACHE_ROOT/libtensorflow-dir-$(printf '%s' "$SRC" | sha256sum | cut -c1-12)"
  link_libs "$SRC" "$LIBTF"
  ln -sfn "$SRC/include" "$LIBTF/include"
  # The headers carry no release number: the addon's cache key names the libraries by size and mtime instead.
  LIB_ID="dir-$(stat -L -c '%n %s %Y' "$LIBTF/lib/libtensorflow.so.2" "$LIBTF/lib/libtensorflow_framework.so.2" | sha256sum | cut -c1-12)"
  say "libtensorflow from FEDGE_LIBTENSORFLOW_DIR=$SRC"
else
  LIBTF="$CACHE_ROOT/libtensorflow-$TF_VERSION"
  if [[ ! -f "$LIBTF/.complete" ]]; then
    command -v python3 >/dev/null || die "python3 (with pip) is needed to fetch the tensorflow-cpu wheel; or set FEDGE_LIBTENSORFLOW_DIR"
    mkdir -p "$LIBTF/wheel"
    WHEEL="$(ls "$LIBTF"/wheel/tensorflow_cpu-"$TF_VERSION"-*.whl 2>/dev/null | head -1 || true)"
    if [[ -z "$WHEEL" ]]; then
      say "downloading tensorflow-cpu==$TF_VERSION from PyPI (~270 MB; only its libtensorflow and headers are used)"
      python3 -m pip download --quiet --no-deps --only-binary=:all: "tensorflow-cpu==$TF_VERSION" -d "$LIBTF/wheel" \
        || die "pip could not download tensorflow-cpu==$TF_VERSION; offline, copy a libtensorflow directory to this machine and set FEDGE_LIBTENSORFLOW_DIR"
      WHEEL="$(ls "$LIBTF"/wheel/tensorflow_cpu-"$TF_VERSION"-*.whl | head -1)"
    fi
    say "extracting libtensorflow and headers from $(basename "$WHEEL")"
    rm -rf "$LIBTF/tensorflow"
    # The whole include tree: tensorflow/c's headers include xla/tsl, absl and Eigen ones.
    python3 - "$WHEEL" "$LIBTF" <<'EOF'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    keep = [n for n in z.namelist() if n in ('tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2')
            or n.startswith('tensorflow/include/')]
    z.extractall(out, keep)
EOF
    link_libs "$LIBTF/tensorflow" "$LIBTF"
    ln -sfn tensorflow/include "$LIBTF/include"
    # The wheel is only needed to extract again; keep it unless asked, so a cache copied elsewhere stays complete.
    [[ "${FEDGE_NATIVE_KEEP_WHEEL:-1}" == 1 ]] || rm -rf "$LIBTF/wheel"
    touch "$LIBTF/.complete"
  fi
  LIB_ID="tf$TF_VERSION"
  say "libtensorflow $TF_VERSION (tensorflow-cpu wheel) from $LIBTF"
fi

# ---- 2. deps/ of the package: where binding.gyp compiles against and the addon's rpath ($ORIGIN/../../deps/lib) loads from ----
rm -rf "$PKG_DIR/deps"
mkdir -p "$PKG_DIR/deps"
if [[ "${FEDGE_NATIVE_COPY:-0}" == 1 ]]; then
  # The same names as the cache's lib/ (relative links kept), with the two real libraries copied in.
  cp -P -r "$LIBTF/lib" "$PKG_DIR/deps/lib"
  for f in "$PKG_DIR"/deps/lib/*; do
    [[ "$(readlink "$f")" == /* ]] && cp --remove-destination "$(readlink -f "$f")" "$f"
  done
  cp -rL "$LIBTF/include" "$PKG_DIR/deps/include"
else
  ln -s "$LIBTF/lib" "$PKG_DIR/deps/lib"
  ln -s "$LIBTF/include" "$PKG_DIR/deps/include"
fi

# ---- 3. the addon: cached per tfjs-node version, Node ABI, platform/arch and TensorFlow version ----
ADDON_CACHE="$CACHE_ROOT/tfjs-node-addon/tfjs-node-$TFJS_NODE_VERSION-node-abi$NODE_ABI-$PLATFORM-$ARCH-$LIB_ID"
if [[ ! -f "$ADDON_CACHE/tfjs_binding.node" ]]; then
  for tool in python3 make g++; do command -v "$tool" >/dev/null || die "$tool is needed to build the tfjs-node addon (node-gyp)"; done
  NPM_DIR="$(dirname "$(readlink -f "$(command -v npm)")")/.."
  NODE_GYP="${npm_config_node_gyp:-$NPM_DIR/node_modules/node-gyp/bin/node-gyp.js}"
  [[ -f "$NODE_GYP" ]] || die "npm's bundled node-gyp not found at $NODE_GYP"
  # The Node headers that came with this node binary, so node-gyp does not download them.
  NODEDIR="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  [[ -f "$NODEDIR/include/node/node_api.h" ]] || die "no Node headers at $NODEDIR/include/node (install your distribution's nodejs headers / node-dev package)"
  say "building tfjs_binding.node (tfjs-node $TFJS_NODE_VERSION, Node ABI $NODE_ABI, libtensorflow $LIB_ID) with node-gyp; about a minute"
  # binding.gyp expects node-pre-gyp's variables (module_name, module_path, napi_build_version).
  (cd "$PKG_DIR" && node "$NODE_GYP" rebuild --loglevel=warn --nodedir="$NODEDIR" \
     --module_name=tfjs_binding --module_path=lib/napi-v8 --napi_build_version=8) >"$CACHE_ROOT/tfjs-node-addon-build.log" 2>&1 \
    || { tail -30 "$CACHE_ROOT/tfjs-node-addon-build.log" >&2; die "node-gyp failed (full log: $CACHE_ROOT/tfjs-node-addon-build.log)"; }
  mkdir -p "$ADDON_CACHE"
  cp "$PKG_DIR/build/Release/tfjs_binding.node" "$ADDON_CACHE/tfjs_binding.node.tmp"
  mv "$ADDON_CACHE/tfjs_binding.node.tmp" "$ADDON_CACHE/tfjs_binding.node"
  rm -rf "$PKG_DIR/build"
fi
mkdir -p "$NAPI_DIR"
cp "$ADDON_CACHE/tfjs_binding.node" "$NAPI_DIR/tfjs_binding.node"

# ---- 4. check: the package loads and its backend is tensorflow ----
# TF_CPP_MIN_LOG_LEVEL=2: libtensorflow's start-up notices (oneDNN, CPU features) go to stderr, not into the check.
CHECK="$(cd packages/ml && TF_CPP_MIN_LOG_LEVEL=2 node -e "
  const tf = require('@tensorflow/tfjs-node');
  process.stdout.write(tf.getBackend() + ' ' + tf.backend().binding.TF_Version);
" 2>"$CACHE_ROOT/tfjs-node-check.log")" || die "@tensorflow/tfjs-node does not load after install: $(tail -5 "$CACHE_ROOT/tfjs-node-check.log")"
[[ "$CHECK" == tensorflow\ * ]] || die "@tensorflow/tfjs-node loaded but its backend is: $CHECK"
say "ok: @tensorflow/tfjs-node $TFJS_NODE_VERSION loads, backend ${CHECK%% *}, libtensorflow ${CHECK#* } ($(($(date +%s) - start)) s)"
