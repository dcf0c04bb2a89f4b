#!/usr/bin/env bash
# Image transfer benchmark: upload and download of a 1 GiB image through the image API on
# loopback (curl), against the disk's own sequential write and read speed measured in the same
# run with dd (write with conv=fsync, read with the page cache dropped, as the download is).
# Prints MB/s, the ratios, and the server's RSS before and at peak during the transfers.
# usage: tools/bench-image.sh [size in MiB, default 1024]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
CACHE=${HANEUL_CI_CACHE:-/var/cache/haneul-ci}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
cargo build --release -p haneul --locked 2>&1 | tail -1
BIN=$CARGO_TARGET_DIR/release/haneul
# On the same disk as the data directory, never tmpfs.
WORK=$(mktemp -d /var/tmp/haneul-bench-image.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port) IMAGE_PORT=$(free_port)
PW=bench-$RANDOM$RANDOM
export HANEUL_DATA_DIR=$WORK/data HANEUL_IDENTITY__PORT=$PORT HANEUL_IMAGE__PORT=$IMAGE_PORT \
  HANEUL_SERVER__BIND=127.0.0.1 HANEUL_IDENTITY__ADMIN_PASSWORD=$PW
PID= SAMPLER=
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  wait 2>/dev/null; rm -rf "$WORK"
}
trap cleanup EXIT
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "(could not drop the page cache; read figures are warm)"; }
mbps() { python3 -c "import sys; print(f'{$1 / 1048576 / $2:.0f}')"; }
now() { date +%s.%N; }
secs() { python3 -c "print(max($2 - $1, 1e-6))"; }

mkdir -p "$WORK/data"
"$BIN" serve > "$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$IMAGE_PORT/" && break; sleep 0.05; done
rss_kb() { awk '/^VmRSS/ {print $2}' /proc/"$PID"/status; }
# Samples the server's RSS every 50 ms into a file; the peak is its maximum.
sample_rss() { while kill -0 "$PID" 2>/dev/null; do rss_kb >> "$WORK/rss"; sleep 0.05; done; }

AUTH='{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"'$PW'"}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}'
TOKEN=$(curl -s -o /dev/null -D - -H 'Content-Type: application/json' -d "$AUTH" "http://127.0.0.1:$PORT/v3/auth/tokens" | awk 'tolower($1)=="x-subject-token:" {print $2}' | tr -d '\r')
[ -n "$TOKEN" ] || { echo "could not get a token"; exit 1; }
IMG=$(curl -s -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name": "bench", "disk_format": "raw", "container_format": "bare"}' "http://127.0.0.1:$IMAGE_PORT/v2/images" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

echo "writing a $MIB MiB random source file"
head -c $((MIB * 1048576)) /dev/urandom > "$WORK/src"
BYTES=$((MIB * 1048576))
cat "$WORK/src" > /dev/null   # the source is read from the page cache in both runs

t=$(now); dd if="$WORK/src" of="$WORK/dd.out" bs=1M conv=fsync status=none; DD_W=$(secs "$t" "$(now)")
drop_caches
t=$(now); dd if="$WORK/dd.out" of=/dev/null bs=1M status=none; DD_R=$(secs "$t" "$(now)")
rm -f "$WORK/dd.out"
cat "$WORK/src" > /dev/null

sleep 0.5
BEFORE=$(rss_kb)
sample_rss & SAMPLER=$!
t=$(now)
code=$(curl -s -o /dev/null -w '%{http_code}' -T "$WORK/src" -H "X-Auth-Token: $TOKEN" \
  -H 'Content-Type: application/octet-stream' "http://127.0.0.1:$IMAGE_PORT/v2/images/$IMG/file")
UP=$(secs "$t" "$(now)")
[ "$code" = 204 ] || { echo "upload failed: $code"; tail "$WORK/serve.log"; exit 1; }
drop_caches
t=$(now)
curl -s -o /dev/null -H "X-Auth-Token: $TOKEN" "http://127.0.0.1:$IMAGE_PORT/v2/images/$IMG/file"
DOWN=$(secs "$t" "$(now)")
kill "$SAMPLER"; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=
# Not timed: the data that comes back is the data that went in.
curl -s -H "X-Auth-Token: $TOKEN" "http://127.0.0.1:$IMAGE_PORT/v2/images/$IMG/file" | cmp -s - "$WORK/src" ||
  { echo "downloaded data differs from the upload"; exit 1; }
PEAK=$(sort -n "$WORK/rss" | tail -1)

printf '\nimage transfer, %s MiB, loopback, release build\n' "$MIB"
printf '  disk write (dd conv=fsync)   %6s MB/s\n' "$(mbps $BYTES "$DD_W")"
printf '  upload (PUT .../file)        %6s MB/s   %s%% of disk write\n' "$(mbps $BYTES "$UP")" \
  "$(python3 -c "print(round(100 * $DD_W / $UP))")"
printf '  disk read (dd, cold cache)   %6s MB/s\n' "$(mbps $BYTES "$DD_R")"
printf '  download (GET .../file)      %6s MB/s   %s%% of disk read\n' "$(mbps $BYTES "$DOWN")" \
  "$(python3 -c "print(round(100 * $DD_R / $DOWN))")"
printf '  server RSS before %.1f MiB, peak during transfers %.1f MiB (growth %.1f MiB)\n' \
  "$(python3 -c "print($BEFORE/1024)")" "$(python3 -c "print($PEAK/1024)")" "$(python3 -c "print(($PEAK-$BEFORE)/1024)")"
