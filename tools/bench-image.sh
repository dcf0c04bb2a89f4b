#!/usr/bin/env bash
# Image transfer benchmark: upload and download of a 1 GiB image through the image API on
# loopback (curl), against the disk's own sequential write and read speed measured in the same
# run with dd (write with conv=fsync, read with the page cache dropped, as the download is).
# Prints MB/s, the ratios, and the server's RSS before and at peak during the transfers.
# usage: tools/bench-image.sh [size in MiB, default 1024] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
ROUNDS=${2:-3}
CACHE=${HANEUL_CI_CACHE:-/var/cache/haneul-ci}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
cargo build --release -p haneul --locked 2>&1 | tail -1
BIN=$CARGO_TARGET_DIR/release/haneul
# On the same disk as the data directory, never tmpfs.
WORK=$(mktemp -d /var/tmp/haneul-bench-image.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port) IMAGE_PORT=$(free_port) COMPUTE_PORT=$(free_port)
PW=bench-$RANDOM$RANDOM
export HANEUL_DATA_DIR=$WORK/data HANEUL_IDENTITY__PORT=$PORT HANEUL_IMAGE__PORT=$IMAGE_PORT HANEUL_COMPUTE__PORT=$COMPUTE_PORT \
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
new_image() {
  curl -s -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name": "bench", "disk_format": "raw", "container_format": "bare"}' "http://127.0.0.1:$IMAGE_PORT/v2/images" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

echo "writing a $MIB MiB random source file"
head -c $((MIB * 1048576)) /dev/urandom > "$WORK/src"
BYTES=$((MIB * 1048576))
sleep 0.5
BEFORE=$(rss_kb)
sample_rss & SAMPLER=$!

# The shared VM's disk varies by run; each round measures dd and the API back to back, and the
# medians are compared.
: > "$WORK/times"
for round in $(seq "$ROUNDS"); do
  cat "$WORK/src" > /dev/null   # the source is read from the page cache in every run
  t=$(now); dd if="$WORK/src" of="$WORK/dd.out" bs=1M conv=fsync status=none; dd_w=$(secs "$t" "$(now)")
  drop_caches
  t=$(now); dd if="$WORK/dd.out" of=/dev/null bs=1M status=none; dd_r=$(secs "$t" "$(now)")
  rm -f "$WORK/dd.out"
  cat "$WORK/src" > /dev/null
  IMG=$(new_image)
  t=$(now)
  code=$(curl -s -o /dev/null -w '%{http_code}' -T "$WORK/src" -H "X-Auth-Token: $TOKEN" \
    -H 'Content-Type: application/octet-stream' "http://127.0.0.1:$IMAGE_PORT/v2/images/$IMG/file")
  up=$(secs "$t" "$(now)")
  [ "$code" = 204 ] || { echo "upload failed: $code"; tail "$WORK/serve.log"; exit 1; }
  drop_caches
  t=$(now)
  curl -s -o /dev/null -H "X-Auth-Token: $TOKEN" "http://127.0.0.1:$IMAGE_PORT/v2/images/$IMG/file"
  down=$(secs "$t" "$(now)")
  echo "$dd_w $up $dd_r $down" >> "$WORK/times"
  printf '  round %s: disk write %s MB/s, upload %s MB/s, disk read %s MB/s, download %s MB/s\n' "$round" \
    "$(mbps $BYTES "$dd_w")" "$(mbps $BYTES "$up")" "$(mbps $BYTES "$dd_r")" "$(mbps $BYTES "$down")"
done
kill "$SAMPLER"; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=
# Not timed: the data that comes back is the data that went in.
curl -s -H "X-Auth-Token: $TOKEN" "http://127.0.0.1:$IMAGE_PORT/v2/images/$IMG/file" | cmp -s - "$WORK/src" ||
  { echo "downloaded data differs from the upload"; exit 1; }
PEAK=$(sort -n "$WORK/rss" | tail -1)

python3 - "$WORK/times" "$BYTES" "$MIB" "$BEFORE" "$PEAK" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
size, mib, before, peak = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
med = [statistics.median(r[i] for r in rows) for i in range(4)]
rate = lambda s: size / 1048576 / s
print(f"\nimage transfer, {mib} MiB, loopback, release build, median of {len(rows)} rounds")
print(f"  disk write (dd conv=fsync)   {rate(med[0]):6.0f} MB/s")
print(f"  upload (PUT .../file)        {rate(med[1]):6.0f} MB/s   {100 * med[0] / med[1]:.0f}% of disk write")
print(f"  disk read (dd, cold cache)   {rate(med[2]):6.0f} MB/s")
print(f"  download (GET .../file)      {rate(med[3]):6.0f} MB/s   {100 * med[2] / med[3]:.0f}% of disk read")
print(f"  server RSS before {before / 1024:.1f} MiB, peak during transfers {peak / 1024:.1f} MiB "
      f"(growth {(peak - before) / 1024:.1f} MiB)")
PY
