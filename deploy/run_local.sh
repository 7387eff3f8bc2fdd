#!/usr/bin/env bash
# A local trial of the hosted setup: N Streamlit replicas behind Caddy on loopback.
#
#   deploy/run_local.sh N [--port 8080] [--secrets FILE] [--db FILE] [--run-dir DIR]
#
# Caddy listens on http://127.0.0.1:PORT; replicas on PORT+1 … PORT+N (loopback only).
# --secrets: a secrets.toml with [auth] and [lupus_dash] (hosted mode: sign-in, roles);
#   default .streamlit/secrets.toml if it exists, else local mode (no login).
# --db: the database (default $LUPUS_DASH_DB, else data/demo.duckdb, built if missing).
# Every replica gets the same secrets file and the same server.cookieSecret. Ctrl-C (or
# SIGTERM) stops Caddy and the replicas this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

n="${1:-}"
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "usage: deploy/run_local.sh N [--port P] [--secrets F] [--db F] [--run-dir D]" >&2; exit 2; }
shift
port=8080
secrets_file=""
[[ -f .streamlit/secrets.toml ]] && secrets_file=".streamlit/secrets.toml"
db="${LUPUS_DASH_DB:-data/demo.duckdb}"
run_dir=""
while (($#)); do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --secrets) secrets_file="$2"; shift 2 ;;
    --db) db="$2"; shift 2 ;;
    --run-dir) run_dir="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
PYTHON="${PYTHON:-python}"
command -v caddy >/dev/null || { echo "caddy is not installed: apt-get install -y caddy" >&2; exit 2; }
run_dir="${run_dir:-$(mktemp -d -t lupus-dash-run.XXXXXX)}"
mkdir -p "$run_dir"
[[ "$db" = /* ]] || db="$ROOT/$db"
if [[ ! -e "$db" ]]; then
  echo "building the demo database at $db"
  "$PYTHON" -m lupus_dash build-demo --db "$db" >/dev/null
fi

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One cookie secret for every replica (XSRF cookies; the [auth] cookie_secret comes from
# the shared secrets file).
export STREAMLIT_SERVER_COOKIE_SECRET="${STREAMLIT_SERVER_COOKIE_SECRET:-$("$PYTHON" -c 'import secrets; print(secrets.token_hex(32))')}"
export LUPUS_DASH_DB="$db"
export LUPUS_DASH_VERSIONED="${LUPUS_DASH_VERSIONED:-1}"

args=(--server.headless true --server.address 127.0.0.1 --server.enableXsrfProtection true
      --client.showErrorDetails none --browser.gatherUsageStats false)
[[ -n "$secrets_file" ]] && args+=(--secrets.files "$(cd "$(dirname "$secrets_file")" && pwd)/$(basename "$secrets_file")")
for ((i = 1; i <= n; i++)); do
  p=$((port + i))
  "$PYTHON" -m streamlit run app.py --server.port "$p" "${args[@]}" \
    >"$run_dir/replica-$p.log" 2>&1 &
  pids+=($!)
done

deploy/make_caddyfile.sh "http://127.0.0.1:$port" $((port + 1)) "$n" "admin off" >"$run_dir/Caddyfile"
caddy run --config "$run_dir/Caddyfile" --adapter caddyfile >"$run_dir/caddy.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 120); do
  ok=0
  for ((i = 1; i <= n; i++)); do
    curl -fsS "http://127.0.0.1:$((port + i))/_stcore/health" >/dev/null 2>&1 && ok=$((ok + 1))
  done
  if ((ok == n)) && curl -fsS "http://127.0.0.1:$port/_stcore/health" >/dev/null 2>&1; then
    echo "lupus-dash: $n replicas behind Caddy at http://127.0.0.1:$port (logs in $run_dir)"
    wait -n "${pids[@]}" || true
    echo "a process stopped; see $run_dir" >&2
    exit 1
  fi
  sleep 0.5
done
echo "did not become healthy in 60 s; see $run_dir" >&2
exit 1
