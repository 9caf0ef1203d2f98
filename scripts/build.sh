#!/bin/sh
# Configures and builds exportd into build/ (Ninja; Release unless the build
# directory was already configured with another type).
#
#   scripts/build.sh [extra cmake args...]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
type_arg="-DCMAKE_BUILD_TYPE=Release"
[ -f build/CMakeCache.txt ] && type_arg=""
cmake -S . -B build -G Ninja $type_arg "$@" >/dev/null
cmake --build build -j"$(nproc)"
