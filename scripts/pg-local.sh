#!/bin/sh
# A throwaway PostgreSQL 15 for demos and benchmarks: initdb into DIR, start
# it on a free port of 127.0.0.1 (socket in DIR, trust authentication on
# loopback, no fsync), create database `exportd`, and print its connection
# string. PostgreSQL refuses to run as root: as root it runs as the system
# user exportd-test (scripts/setup.sh creates it; DIR's parents must let that
# user through). The tests start their own (tests/support/postgres_server.h).
#
#   url=$(scripts/pg-local.sh start /tmp/pg)   # postgresql://exportd@127.0.0.1:PORT/exportd
#   scripts/pg-local.sh stop /tmp/pg
set -eu
cmd=${1:-}
dir=${2:-}
if [ -z "$dir" ] || { [ "$cmd" != start ] && [ "$cmd" != stop ]; }; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi
bindir=${EXPORTD_PG_BINDIR:-/usr/lib/postgresql/15/bin}
if [ ! -x "$bindir/postgres" ]; then
  echo "pg-local: PostgreSQL 15 is not installed (no $bindir/postgres): run scripts/setup.sh" >&2
  exit 1
fi
as=""
if [ "$(id -u)" = 0 ]; then
  if ! id exportd-test >/dev/null 2>&1; then
    echo "pg-local: PostgreSQL does not run as root and user exportd-test is missing:" \
      "run scripts/setup.sh" >&2
    exit 1
  fi
  as="runuser -u exportd-test --"
fi
if [ "$cmd" = stop ]; then
  $as "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null
  exit 0
fi
mkdir -p "$dir"
[ -z "$as" ] || chown exportd-test: "$dir"
$as "$bindir/initdb" -D "$dir/data" -U exportd -A trust --no-sync -E UTF8 --locale=C \
  --no-instructions >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
  -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=300" start >/dev/null ||
  { cat "$dir/postgres.log" >&2; exit 1; }
"$bindir/createdb" -h 127.0.0.1 -p "$port" -U exportd exportd
echo "postgresql://exportd@127.0.0.1:$port/exportd"
