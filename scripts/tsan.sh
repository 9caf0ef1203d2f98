#!/bin/sh
# Builds the engine, sync, destinations and store tests in a ThreadSanitizer
# build directory and runs them; any TSan report fails (docs/developing.md).
#
#   cmake -S . -B /tmp/build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
#         -DEXPORTD_SANITIZE=thread -DEXPORTD_BAZEL_TEST=OFF -DEXPORTD_BUILD_BENCH=OFF
#   scripts/tsan.sh /tmp/build-tsan
set -eu
build=${1:?usage: scripts/tsan.sh BUILD_DIR (configured with -DEXPORTD_SANITIZE=thread)}
grep -q '^EXPORTD_SANITIZE:[A-Z]*=thread$' "$build/CMakeCache.txt" || {
  echo "tsan: $build is not configured with -DEXPORTD_SANITIZE=thread" >&2
  exit 2
}
# The test executables defined in these folders, read off the build graph.
tests=$(grep -oE '^build bin/[a-z0-9_]+_test[ :][^:]*: CXX_EXECUTABLE_LINKER__[^ ]+ ([^ |]+ )*server/(engine|sync|destinations|store)/[^ ]*/[a-z0-9_]+_test[.]dir/' \
  "$build/build.ninja" | sed -E 's|^build bin/([a-z0-9_]+_test).*|\1|' | sort -u)
[ -n "$tests" ] || { echo "tsan: no tests found in $build" >&2; exit 2; }
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" --target $tests
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
failed=""
for t in $tests; do
  echo "tsan: $t"
  # From the build directory, as CTest runs them (tests find their data relative to it).
  (cd "$build" && "bin/$t" --gtest_brief=1) || failed="$failed $t"
done
if [ -n "$failed" ]; then
  echo "tsan: FAILED:$failed" >&2
  exit 1
fi
echo "tsan: every test passed without a report"
