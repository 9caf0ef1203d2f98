#!/bin/sh
# install_test: `cmake --install BUILD_DIR --prefix P` into a temporary prefix,
# then checks the installed tree and that it works from there alone:
#   - the files: binaries, libexportd_proto.so, plugins in P/lib/exportd/plugins,
#     SDK headers and CMake package, protos in P/share/exportd/proto;
#   - RUNPATH is relative ($ORIGIN/...) and the dynamic loader resolves
#     libexportd_proto.so inside P, with an empty environment;
#   - P/bin/exportd --version, P/bin/exportctl --version;
#   - P/bin/exportd started with no --plugin-dir and no --tokens-file on
#     127.0.0.1:0 creates DATA_DIR/admin.token (mode 0600), loads jsonl (and
#     iterable) from P/lib/exportd/plugins, answers the installed exportctl and
#     a Python client whose stubs are generated from P/share/exportd/proto, and
#     shuts down cleanly on SIGTERM.
#
#   tests/install/install_test.sh BUILD_DIR WORK_DIR [PYTHON3]
set -eu

if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR WORK_DIR [PYTHON3]" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
work=$2
python=${3:-/usr/bin/python3}
src=$(cd "$(dirname "$0")/../.." && pwd)

failures=0
ok() { echo "ok:   $*"; }
bad() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
die() { echo "FAIL: $*" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
log=$work/install.log

# --- install ------------------------------------------------------------------
if ! cmake --install "$build" --prefix "$prefix" >"$log" 2>&1; then
  cat "$log" >&2
  die "cmake --install $build --prefix $prefix failed (is everything built? run ninja first)"
fi
ok "cmake --install into $prefix ($(grep -c -e '-- Installing' "$log") files)"

# --- files --------------------------------------------------------------------
for f in bin/exportd bin/exportctl bin/exportd-plugin-check bin/iterable-sandbox; do
  if [ -x "$prefix/$f" ]; then ok "$f"; else bad "$f is missing or not executable"; fi
done
libproto=$(find "$prefix/lib" -maxdepth 2 -name 'libexportd_proto.so*' | head -n 1)
if [ -n "$libproto" ]; then ok "${libproto#$prefix/}"; else bad "libexportd_proto.so is not installed under lib/"; fi
for plugin in jsonl iterable; do
  f=lib/exportd/plugins/libexportd_$plugin.so
  if [ -f "$prefix/$f" ]; then ok "$f"; else bad "$f is missing"; fi
done
for f in include/exportd/sdk/destination.h; do
  if [ -f "$prefix/$f" ]; then ok "$f"; else bad "$f is missing"; fi
done
sdkcfg=$(find "$prefix/lib" -maxdepth 4 -path '*/cmake/exportd_sdk/exportd_sdk-config.cmake' | head -n 1)
if [ -n "$sdkcfg" ]; then ok "${sdkcfg#$prefix/}"; else bad "the exportd_sdk CMake package is missing"; fi
for p in "$src"/proto/exportd/v1/*.proto; do
  f=share/exportd/proto/exportd/v1/$(basename "$p")
  if cmp -s "$p" "$prefix/$f"; then ok "$f"; else bad "$f is missing or differs from proto/"; fi
done

# --- RUNPATH and the dynamic loader -------------------------------------------
for b in exportd exportctl exportd-plugin-check; do
  runpath=$(readelf -d "$prefix/bin/$b" | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]/\2/p')
  case "$runpath" in
    *"$build"*) bad "bin/$b RUNPATH still names the build tree: $runpath" ;;
    *'$ORIGIN/../lib'*) ok "bin/$b RUNPATH $runpath" ;;
    *) bad "bin/$b RUNPATH is '$runpath', want \$ORIGIN/../lib..." ;;
  esac
  resolved=$(env -i ldd "$prefix/bin/$b" | sed -n 's/.*libexportd_proto\.so.* => \([^ ]*\).*/\1/p')
  case "$resolved" in
    "$prefix"/*) ok "bin/$b loads libexportd_proto.so from ${resolved#$prefix/}" ;;
    *) bad "bin/$b resolves libexportd_proto.so to '$resolved', not inside $prefix" ;;
  esac
done

version=$(env -i "$prefix/bin/exportd" --version 2>&1) || bad "exportd --version failed: $version"
case "$version" in
  "exportd "*"(plugin ABI "*) ok "exportd --version: $version" ;;
  *) bad "exportd --version printed '$version'" ;;
esac
version=$(env -i "$prefix/bin/exportctl" --version 2>&1) || bad "exportctl --version failed: $version"
case "$version" in
  *exportctl*) ok "exportctl --version: $(echo "$version" | head -n 1)" ;;
  *) bad "exportctl --version printed '$version'" ;;
esac

# --- the installed exportd, with no flags but address and data dir -----------
data=$work/data
server_log=$work/exportd.log
# Created here, not by the redirection below: that runs in the background
# child, and the poll loop's first sed could come before it (then sed fails and
# set -e ends the test).
: >"$server_log"
env -i "$prefix/bin/exportd" --listen 127.0.0.1:0 --data-dir "$data" >/dev/null 2>"$server_log" &
pid=$!
stop_server() {
  if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
}
trap stop_server EXIT

# Poll the log for the address (no fixed sleeps): up to 30 s.
port=
i=0
while [ $i -lt 600 ]; do
  port=$(sed -n 's/^exportd listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$server_log")
  [ -n "$port" ] && grep -q '^destinations: ' "$server_log" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
  i=$((i + 1))
done
if [ -z "$port" ]; then
  cat "$server_log" >&2
  die "the installed exportd did not print 'exportd listening on 127.0.0.1:PORT'"
fi
address=127.0.0.1:$port
ok "installed exportd listening on $address"
destinations=$(sed -n 's/^destinations: //p' "$server_log")
case ", $destinations," in
  *", jsonl "*) ok "destinations without --plugin-dir: $destinations" ;;
  *) bad "the installed exportd did not load jsonl from lib/exportd/plugins (destinations: $destinations)" ;;
esac
case ", $destinations," in
  *", iterable "*) ok "iterable loaded" ;;
  *) bad "the installed exportd did not load iterable (destinations: $destinations)" ;;
esac
if grep -q '^refused plugin' "$server_log"; then bad "refused plugins: $(grep '^refused plugin' "$server_log")"; fi
token_file=$data/admin.token
mode=$(stat -c %a "$token_file" 2>/dev/null || echo missing)
if [ "$mode" = 600 ]; then ok "admin.token created, mode 0600"; else bad "admin.token mode is $mode, want 600"; fi

# The installed exportctl against the installed exportd.
if out=$(env -i "$prefix/bin/exportctl" --server "$address" --token-file "$token_file" \
    -o json destination list 2>&1); then
  case "$out" in
    *'"jsonl"'*"$prefix/lib/exportd/plugins/libexportd_jsonl.so"*|*"$prefix/lib/exportd/plugins/libexportd_jsonl.so"*'"jsonl"'*)
      ok "exportctl destination list shows jsonl from $prefix/lib/exportd/plugins" ;;
    *) bad "exportctl destination list did not show jsonl from the prefix: $out" ;;
  esac
else
  bad "exportctl destination list failed: $out"
fi

# A Python client generated from the INSTALLED protos.
gen=$work/gen
if ! "$python" -c 'import grpc, google.protobuf' 2>/dev/null; then
  bad "$python cannot import grpc; apt-get install python3-grpcio python3-protobuf"
elif ! EXPORTD_PROTO_DIR=$prefix/share/exportd/proto sh "$src/client/python/generate.sh" "$gen"; then
  bad "client/python/generate.sh failed with the installed protos"
else
  outdir=$work/out
  mkdir -p "$outdir"
  if PYTHONPATH=$gen "$python" "$src/client/python/exportd_example.py" --server "$address" \
      --token-file "$token_file" --destination-type jsonl --setting "directory=$outdir" \
      --members 20 --chunk-size 7 --no-run >"$work/python.log" 2>&1; then
    ok "Python example (stubs from share/exportd/proto) against the installed exportd"
  else
    cat "$work/python.log" >&2
    bad "the Python example failed against the installed exportd"
  fi
fi

# Clean shutdown.
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
trap - EXIT
if [ "$status" -eq 0 ]; then ok "exportd shut down cleanly on SIGTERM"; else bad "exportd exited $status on SIGTERM"; fi

if [ "$failures" -ne 0 ]; then
  echo "--- exportd log ---" >&2
  cat "$server_log" >&2
  echo "$failures check(s) failed" >&2
  exit 1
fi
rm -rf "$work"
echo PASS
