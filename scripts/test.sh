#!/bin/sh
# Sets up a fresh Debian 12 machine (as root), builds everything and runs the
# whole test suite with CTest. This is what CI runs (.ci/run).
#
#   scripts/test.sh
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
cd build
if ! ctest --output-on-failure -j"$(nproc)" --timeout 1200; then
  # A CI log is often read from its end: repeat there the end of each failed test's output.
  echo "scripts/test.sh: the end of each failed test's output:" >&2
  while IFS=: read -r number name; do
    echo "== $name" >&2
    awk -v n="$number/" '
      index($0, n) == 1 && / Testing: / { on = 1; k = 0; next }
      on && /^<end of output>/ { for (i = (k > 30 ? k - 29 : 1); i <= k; i++) print line[i]; exit }
      on { line[++k] = $0 }' Testing/Temporary/LastTest.log >&2
  done < Testing/Temporary/LastTestsFailed.log
  exit 1
fi
