#!/usr/bin/env bash
# Install the test dependencies (pip packages; Debian's chromium for the browser tests,
# postgresql for the OMOP tests and caddy for the hosting recipe) and run the whole suite.
# Used by the README and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# Debian packages the tests need: chromium (browser tests), postgresql (import-omop tests
# start a throwaway PostgreSQL 15 cluster with its initdb/pg_ctl), caddy (the deploy/
# recipe's proxy, 2.6).
APT=()
command -v chromium >/dev/null 2>&1 || APT+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || APT+=(postgresql)
command -v caddy >/dev/null 2>&1 || APT+=(caddy)
if [ ${#APT[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT[@]}" >/dev/null
fi
exec python -m pytest "$@"
