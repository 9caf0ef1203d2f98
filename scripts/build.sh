#!/bin/sh
# Configures and builds exportd into build/ (Release, Ninja).
#
#   scripts/build.sh [extra cmake args...]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
