#!/usr/bin/env bash
# Install the test dependencies (pip packages, Debian's chromium for the browser
# tests and postgresql for the OMOP tests) and run the whole suite. Used by the README and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# Debian packages the tests need: chromium (browser tests) and postgresql (import-omop tests
# start a throwaway PostgreSQL 15 cluster with its initdb/pg_ctl).
APT=()
command -v chromium >/dev/null 2>&1 || APT+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || APT+=(postgresql)
if [ ${#APT[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT[@]}" >/dev/null
fi
exec python -m pytest "$@"
