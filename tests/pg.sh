#!/usr/bin/env bash
# A private PostgreSQL server for the test suite, in a directory of its own, on loopback.
# usage: tests/pg.sh start <dir>   -> prints "127.0.0.1:<port>"
#        tests/pg.sh stop <dir>
set -euo pipefail
cmd=$1 dir=$2
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
case $cmd in
  start)
    rm -rf "$dir"; mkdir -p "$dir"; chown postgres:postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    runuser -u postgres -- "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null
    echo "127.0.0.1:$port"
    ;;
  stop)
    [ -d "$dir/data" ] && runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    ;;
esac
