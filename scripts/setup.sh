#!/bin/sh
# Installs everything exportd needs to build, test and run, on Debian 12, as
# root. Idempotent: run it as often as you like.
#
#   scripts/setup.sh
set -eu

packages="
  build-essential cmake ninja-build pkg-config git ca-certificates tzdata procps curl
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libboost-dev libboost-filesystem-dev
  libsqlite3-dev libcurl4-openssl-dev libssl-dev openssl nlohmann-json3-dev prometheus-cpp-dev
  libcivetweb-dev libcli11-dev
  libgtest-dev libgmock-dev
  postgresql-15 libpq-dev
  python3 python3-grpcio python3-protobuf
"
# Node.js for the Node client example: Debian's, unless one is installed.
command -v node >/dev/null 2>&1 || packages="$packages nodejs"
command -v npm >/dev/null 2>&1 || packages="$packages npm"
# Headless Chromium for the console's browser test (tests/console).
packages="$packages chromium"
# The offline Bazel alternative build.
packages="$packages bazel-bootstrap default-jdk-headless"

missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# PostgreSQL refuses to run as root: the tests (tests/support/postgres_server.h)
# and DEMO_STORE=postgres scripts/demo.sh run their own server as this user.
if ! getent passwd exportd-test >/dev/null 2>&1; then
  echo "setup: creating the system user exportd-test (runs PostgreSQL for tests and demos)"
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin exportd-test
fi

root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup-node-client.sh"
"$root/scripts/setup-console-test.sh"
