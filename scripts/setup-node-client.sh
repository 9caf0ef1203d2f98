#!/bin/sh
# Installs the Node.js client's dependencies (@grpc/grpc-js, @grpc/proto-loader)
# exactly as pinned in client/node/package-lock.json, into client/node/node_modules.
# The node_example_test needs this; CI runs it before ctest.
#
#   scripts/setup-node-client.sh
#
# Needs node >= 18 and npm (Debian 12's nodejs is 18; this machine has node 20)
# and access to the npm registry (or a mirror set with `npm config set registry`).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/client/node

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup-node-client: node and npm are needed (node >= 18)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "setup-node-client: node $(node --version) is too old; node >= 18 is needed" >&2
  exit 1
fi

cd "$dir"
# `npm ci` installs the lock file's versions and fails if package.json and the
# lock file disagree; it never rewrites the lock file.
npm ci --no-audit --no-fund
node -e '
  const versions = ["@grpc/grpc-js", "@grpc/proto-loader"].map(
    (m) => { require(m); return m + "@" + require(m + "/package.json").version; });
  console.log("setup-node-client: " + versions.join(", ") + " in " + process.cwd());'
