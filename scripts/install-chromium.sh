#!/usr/bin/env bash
# Installs headless Chromium (Debian's package) for test/e2e/dashboard.test.ts, which drives the coordinator's web
# dashboard with puppeteer-core. puppeteer-core never downloads a browser: it launches this one (FEDGE_CHROMIUM or
# /usr/bin/chromium). Used by npm's pretest and .ci/run. Idempotent.
#
#   bash scripts/install-chromium.sh
set -euo pipefail

existing="${FEDGE_CHROMIUM:-}"
[[ -n "$existing" ]] || existing="$(command -v chromium || true)"
if [[ -n "$existing" && -x "$existing" ]]; then
  echo "install-chromium: $existing is already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: no apt-get here; install Chromium with your package manager and point FEDGE_CHROMIUM at it (the dashboard e2e test needs it)" >&2
  exit 1
fi
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
$SUDO apt-get update -qq
# Recommends pull in a desktop's worth of packages; the headless shell needs none of them (fonts-liberation: legible
# text in the screenshots).
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
echo "install-chromium: installed $(chromium --version 2>/dev/null || echo chromium)"
