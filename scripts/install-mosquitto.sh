#!/usr/bin/env bash
# Installs the Mosquitto MQTT broker (Debian's package) for test/e2e/mqtt-broker.test.ts, which runs fedge against a
# real external broker (stopped and restarted under a run). Used by .ci/run. Idempotent; the broker is not started
# as a service (the tests start their own on a free loopback port).
#
#   bash scripts/install-mosquitto.sh
set -euo pipefail

if command -v mosquitto >/dev/null 2>&1 || [[ -x /usr/sbin/mosquitto ]]; then
  echo "install-mosquitto: $(command -v mosquitto || echo /usr/sbin/mosquitto) is already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-mosquitto: no apt-get here; install mosquitto with your package manager (the e2e test needs /usr/sbin/mosquitto or mosquitto on PATH)" >&2
  exit 1
fi
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
echo "install-mosquitto: installed $(/usr/sbin/mosquitto -h 2>/dev/null | head -1 || echo mosquitto)"
