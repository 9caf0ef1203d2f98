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
ctest --output-on-failure -j"$(nproc)" --timeout 1200
