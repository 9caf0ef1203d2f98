#!/bin/bash
# The main job, end to end on the embedded defaults: sets up the machine
# (Debian 12, as root), builds exportd, starts the local Iterable sandbox and
# exportd (SQLite store in a temporary data directory), then with exportctl:
# creates an Iterable connection, uploads a segment of 10,000 profiles from a
# CSV (some emails invalid, some upper-case), creates an export that maps the
# email and two data fields, runs it with live progress, changes 1% of the
# segment and runs it again (only the changes are sent), and shows what the
# sandbox holds. exportd also serves the web console and the HTTP/JSON API
# (docs/http-api.md) on a free port; the demo prints its URL.
#
#   scripts/demo.sh            (DEMO_PROFILES=100000 scripts/demo.sh for more)
#
# DEMO_STORE=postgres: a local PostgreSQL instead (scripts/pg-local.sh) and two
# exportd replicas on it; the demo runs through the first and watches each run
# through the second (docs/scale-out.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
profiles=${DEMO_PROFILES:-10000}

"$root/scripts/setup.sh"
"$root/scripts/build.sh"

store=${DEMO_STORE:-sqlite}
if [ "$store" != sqlite ] && [ "$store" != postgres ]; then
  echo "demo: DEMO_STORE is sqlite (the default) or postgres, not '$store'" >&2
  exit 2
fi
work=$(mktemp -d /tmp/exportd-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$store" = postgres ]; then "$root/scripts/pg-local.sh" stop "$work/pg" || true; fi
}
trap cleanup EXIT

# Waits until FILE has a line matching "listening on HOST:PORT"; prints PORT.
wait_port() {
  local file=$1
  for _ in $(seq 1 300); do
    local port
    port=$(grep -oE 'listening on 127\.0\.0\.1:[0-9]+' "$file" | head -1 | cut -d: -f2 || true)
    if [ -n "$port" ]; then echo "$port"; return 0; fi
    sleep 0.1
  done
  echo "demo: no 'listening on' line in $file:" >&2
  cat "$file" >&2
  return 1
}

export ITERABLE_API_KEY=demo-api-key-0123456789abcdef01
build/bin/iterable-sandbox --listen 127.0.0.1:0 --api-key "$ITERABLE_API_KEY" >"$work/sandbox.log" 2>&1 &
pids+=($!)
sandbox_port=$(wait_port "$work/sandbox.log")
echo "demo: Iterable sandbox on 127.0.0.1:$sandbox_port"

store_flags=()
if [ "$store" = postgres ]; then
  chmod o+x "$work"  # PostgreSQL's own user needs to reach $work/pg.
  store_url=$("$root/scripts/pg-local.sh" start "$work/pg")
  echo "demo: PostgreSQL at $store_url"
  store_flags=(--store "$store_url")
fi
build/bin/exportd --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --data-dir "$work/exportd-data" \
  --replica-id replica-1 "${store_flags[@]}" >"$work/exportd.log" 2>&1 &
pids+=($!)
exportd_port=$(wait_port "$work/exportd.log")
cat "$work/exportd.log"
console_url=$(grep -oE 'console and HTTP API: http://127\.0\.0\.1:[0-9]+/' "$work/exportd.log" |
  grep -oE 'http://.*' || true)
echo "demo: web console at $console_url (sign in with the token in $work/exportd-data/admin.token)"
watch_port=$exportd_port
if [ "$store" = postgres ]; then
  # A second replica on the same database and data directory (its key and
  # admin token); runs go to whichever replica claims them first.
  build/bin/exportd --listen 127.0.0.1:0 --data-dir "$work/exportd-data" --replica-id replica-2 \
    "${store_flags[@]}" >"$work/exportd-2.log" 2>&1 &
  pids+=($!)
  watch_port=$(wait_port "$work/exportd-2.log")
  cat "$work/exportd-2.log"
fi

export EXPORTD_SERVER=127.0.0.1:$exportd_port
export EXPORTD_DATA_DIR=$work/exportd-data
ctl() { echo "+ exportctl $*" >&2; build/bin/exportctl "$@"; }
# Runs the export through the first replica and watches it through the last.
run_and_watch() {
  local run
  run=$(build/bin/exportctl --output json export run "$1" |
    grep -oE '"id": *"run-[0-9a-f]+"' | head -1 | grep -oE 'run-[0-9a-f]+')
  echo "+ exportctl --server 127.0.0.1:$watch_port run watch $run" >&2
  build/bin/exportctl --server "127.0.0.1:$watch_port" run watch "$run" || true
  ctl run get "$run"
}

# A segment of profiles: every 50th email is invalid, every 7th upper-case.
make_csv() {  # make_csv FILE CHANGED_PERCENT
  awk -v n="$profiles" -v changed="$2" 'BEGIN {
    print "ProfileId,Email,FirstName,LoyaltyPoints,SignedUpAt";
    for (i = 1; i <= n; i++) {
      email = "customer" i "@example.com";
      if (i % 50 == 0) email = "customer" i "@invalid";
      if (i % 7 == 0) email = toupper(email);
      points = i % 1000;
      if (changed > 0 && i % 100 == 1) points = points + 1;       # changed members
      if (changed > 0 && i % 100 == 2) continue;                  # members who left
      printf "p%d,%s,Name%d,%d,2024-05-%02dT10:00:00Z\n", i, email, i, points, (i % 28) + 1;
    }
    if (changed > 0) for (i = n + 1; i <= n + n / 100; i++)       # members who joined
      printf "p%d,new%d@example.com,New%d,0,2026-01-01T00:00:00Z\n", i, i, i;
  }' > "$1"
}
make_csv "$work/vip.csv" 0

ctl connection create --name "Iterable sandbox" --type iterable \
  --setting base_url=http://127.0.0.1:$sandbox_port --secret api_key=env:ITERABLE_API_KEY \
  --add-self-as-export-user --accept-privacy-terms
ctl connection test "Iterable sandbox"
ctl segment create --name "VIP Customers" --from-csv "$work/vip.csv" --id-field ProfileId \
  --field LoyaltyPoints:int --field SignedUpAt:timestamp
ctl export create --name vip-to-iterable --connection "Iterable sandbox" \
  --segment "VIP Customers" --map email=Email --map firstName=FirstName \
  --map loyaltyPoints=LoyaltyPoints --mode mirror
run_and_watch vip-to-iterable
run_id=$(build/bin/exportctl --output json export runs vip-to-iterable --limit 1 |
  grep -oE '"id": *"run-[0-9a-f]+"' | head -1 | grep -oE 'run-[0-9a-f]+')
ctl run rejections "$run_id" --limit 5

echo "demo: 1% of the segment changes (joins, leaves, new values); the next run sends only that"
make_csv "$work/vip-changed.csv" 1
ctl segment upload "VIP Customers" --from-csv "$work/vip-changed.csv" --id-field ProfileId \
  --field LoyaltyPoints:int --field SignedUpAt:timestamp
run_and_watch vip-to-iterable
ctl export runs vip-to-iterable

echo "demo: the sandbox's lists (one named exactly as the segment):"
curl -s "http://127.0.0.1:$sandbox_port/_sandbox/lists"; echo
echo "demo: data is in $work"
echo "demo: web console at $console_url (token: $work/exportd-data/admin.token);" \
  "HTTP/JSON API at ${console_url}v1/ (docs/http-api.md)"
if [ -t 0 ]; then
  read -r -p "demo: press Enter to stop exportd and the sandbox " _
fi
