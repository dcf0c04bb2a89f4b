#!/usr/bin/env bash
# Identity benchmark: starts a release `haneul serve` on loopback and drives it with wrk.
# Prints requests/s and p50/p99 for token validate, token issue (password, bounded by the
# bcrypt cost) and project list; idle and loaded RSS; time from start to first answer.
# usage: [HANEUL_BIN=path] tools/bench-identity.sh [seconds per load run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CACHE=${HANEUL_CI_CACHE:-/var/cache/haneul-ci}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
# HANEUL_BIN: a binary already built (tools/bench-compare.sh compares two).
if [ -n "${HANEUL_BIN:-}" ]; then
  BIN=$HANEUL_BIN
else
  cargo build --release -p haneul --locked 2>&1 | tail -1
  BIN=$CARGO_TARGET_DIR/release/haneul
fi
WORK=$(mktemp -d /tmp/haneul-bench.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
PW=bench-$RANDOM$RANDOM
IMAGE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export HANEUL_IMAGE__PORT=$IMAGE_PORT HANEUL_COMPUTE__PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export HANEUL_DATA_DIR=$WORK HANEUL_IDENTITY__PORT=$PORT HANEUL_SERVER__BIND=127.0.0.1 HANEUL_IDENTITY__ADMIN_PASSWORD=$PW
# Identity only is measured: no network data plane (it would build bridges and namespaces on
# this host) and no demo networks.
export HANEUL_NETWORK__DATAPLANE=false HANEUL_NETWORK__DEMO_LAYOUT=false
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# Milliseconds from spawn to the first answer of GET /.
start_server() {
  python3 - "$BIN" "$URL" "$WORK/serve.log" <<'PY'
import subprocess, sys, time, urllib.request, urllib.error
binary, url, log = sys.argv[1:4]
t0 = time.monotonic()
p = subprocess.Popen([binary, "serve"], stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
while True:
    try:
        urllib.request.urlopen(url + "/", timeout=1)
    except urllib.error.HTTPError:
        break  # 300 Multiple Choices is the answer
    except OSError:
        if time.monotonic() - t0 > 30: sys.exit("no answer within 30 s")
        time.sleep(0.002); continue
    break
print(p.pid, int((time.monotonic() - t0) * 1000))
PY
}
rss() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' /proc/"$PID"/status; }
hwm() { awk '/^VmHWM/ {printf "%.1f", $2/1024}' /proc/"$PID"/status; }

read -r PID FIRST_MS < <(start_server)
kill "$PID"; wait "$PID" 2>/dev/null || true
read -r PID RESTART_MS < <(start_server)
sleep 1
IDLE=$(rss)

AUTH='{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"'$PW'"}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}'
TOKEN=$(curl -s -o /dev/null -D - -H 'Content-Type: application/json' -d "$AUTH" "$URL/v3/auth/tokens" | awk 'tolower($1)=="x-subject-token:" {print $2}' | tr -d '\r')
[ -n "$TOKEN" ] || { echo "could not get a token"; exit 1; }

cat > "$WORK/issue.lua" <<LUA
wrk.method = "POST"
wrk.body = '$AUTH'
wrk.headers["Content-Type"] = "application/json"
LUA

run() { # name, wrk args...
  local name=$1; shift
  local out; out=$(wrk --latency -t2 -c"${CONNS:-32}" -d"${DUR}s" "$@")
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  local errs; errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  printf '%-34s %10s req/s   p50 %-9s p99 %-9s %s\n' "$name" "$rps" "$p50" "$p99" "$errs"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "bcrypt cost: $(grep -c . /dev/null >/dev/null; echo ${HANEUL_IDENTITY__PASSWORD_HASH_ROUNDS:-12}); load: wrk -t2 -c${CONNS:-32} ${DUR}s per run, on loopback"
run "token validate (GET /v3/auth/tokens)" -H "X-Auth-Token: $TOKEN" -H "X-Subject-Token: $TOKEN" "$URL/v3/auth/tokens?nocatalog"
run "project list (GET /v3/projects)" -H "X-Auth-Token: $TOKEN" "$URL/v3/projects"
CONNS=4 run "token issue (POST, password)" -s "$WORK/issue.lua" "$URL/v3/auth/tokens"
echo "first answer: ${FIRST_MS} ms on an empty data dir (includes bootstrap), ${RESTART_MS} ms on restart"
echo "RSS: idle ${IDLE} MiB, peak under load $(hwm) MiB, after load $(rss) MiB"
