#!/usr/bin/env bash
# Render deploy/Caddyfile.template.
#   deploy/make_caddyfile.sh SITE FIRST_PORT N [GLOBAL_OPTIONS] > Caddyfile
# e.g. deploy/make_caddyfile.sh lupus.example.org 8501 2 > /etc/caddy/Caddyfile
set -euo pipefail
site="$1"; first="$2"; n="$3"; global="${4:-}"
upstreams=""
for ((i = 0; i < n; i++)); do upstreams+="127.0.0.1:$((first + i)) "; done
sed -e "s|@SITE@|${site}|" -e "s|@UPSTREAMS@|${upstreams% }|" -e "s|@GLOBAL@|${global}|" \
  "$(dirname "$0")/Caddyfile.template"
