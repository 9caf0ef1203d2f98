#!/usr/bin/env bash
# Builds every exportd program, plugin and test with Bazel, offline, against the system
# libraries, and runs the tests: `bazel test //...` in this folder. Exits non-zero on failure.
#
# Installs nothing. It needs the Debian 12 packages that the CMake build needs (see README.md)
# plus:  apt-get install -y bazel-bootstrap default-jdk-headless
#
# Usage: bazel-alternative/run-bazel-tests.sh [extra bazel test arguments, e.g. //server/...]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! command -v bazel >/dev/null 2>&1; then
  echo "run-bazel-tests.sh: bazel not found; apt-get install -y bazel-bootstrap" >&2
  exit 2
fi

# bazel/exportd.bzl carries the project version for EXPORTD_VERSION; it must match CMake's.
cmake_version="$(sed -n 's/^project(exportd VERSION \([0-9.]*\).*/\1/p' ../CMakeLists.txt)"
bazel_version="$(sed -n 's/^EXPORTD_VERSION = "\(.*\)"$/\1/p' bazel/exportd.bzl)"
if [[ -n "$cmake_version" && "$cmake_version" != "$bazel_version" ]]; then
  echo "run-bazel-tests.sh: CMakeLists.txt says version $cmake_version," \
    "bazel/exportd.bzl says $bazel_version; update EXPORTD_VERSION" >&2
  exit 1
fi

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then targets=(//...); fi

# .bazelrc holds the offline settings, the output base under /tmp and --jobs=2. Under CI or
# CTest (EXPORTD_BAZEL_SHUTDOWN=1) the Bazel server is stopped afterwards, so that no JVM
# lingers; the output base, and with it the action cache, stays for the next run.
status=0
output="$(mktemp)"
trap 'rm -f "$output"' EXIT
bazel test --jobs=2 "${targets[@]}" 2>&1 | tee "$output" || status=$?
if [[ -n "${CI:-}" || "${EXPORTD_BAZEL_SHUTDOWN:-}" == 1 ]]; then
  bazel shutdown || true
fi
# A CI log is often read from its end: repeat there which tests failed and how each ended.
if [[ "$status" != 0 ]]; then
  failed="$(sed -n 's#^\(//[^ ]*\) .*\(FAILED\|TIMEOUT\|NO STATUS\|INCOMPLETE\).*#\1 \2#p' "$output")"
  echo "run-bazel-tests.sh: bazel test exited with $status; failed tests:" >&2
  while read -r target how; do
    [[ -z "$target" ]] && continue
    echo "== $target: $how; the end of its log:" >&2
    log="bazel-testlogs/${target#//}"
    log="${log/://}"
    find -L "$log" -name test.log 2>/dev/null | while read -r f; do tail -n 25 "$f" >&2; done
  done <<<"$failed"
fi
exit "$status"
