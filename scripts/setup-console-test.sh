#!/bin/sh
# Installs the console browser test's dependency (puppeteer-core) exactly as
# pinned in tests/console/package-lock.json, into tests/console/node_modules,
# without a browser download: the test drives Debian's Chromium
# (/usr/bin/chromium, installed by scripts/setup.sh). console_browser_test
# needs this; CI runs it before ctest.
#
#   scripts/setup-console-test.sh
#
# Needs node >= 18 and npm, and access to the npm registry (or a mirror).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup-console-test: node and npm are needed (node >= 18)" >&2
  exit 1
fi

cd "$root/tests/console"
# No browser download: puppeteer-core has none, and this keeps any helper from trying.
PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund
node -e '
  console.log("setup-console-test: puppeteer-core@" + require("puppeteer-core/package.json").version +
              " in " + process.cwd());'
