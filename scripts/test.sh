#!/usr/bin/env bash
# Install the test dependencies (pip packages; Debian's chromium for the browser
# tests and caddy for the hosting recipe) and run the whole suite. Used by the README and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# Debian packages: chromium (browser tests), caddy (the deploy/ recipe's proxy, 2.6).
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
if [ "${#need[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
exec python -m pytest "$@"
