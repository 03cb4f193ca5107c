#!/usr/bin/env bash
# Installs what the browser end-to-end test (tests/browser.rs) needs, once:
# Debian's Chromium and the pinned playwright-core in
# crates/steno-server/tests/e2e/node_modules.
# Safe to run again: it does nothing when both are present.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "install-e2e: installing chromium"
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends chromium
fi

if [ ! -d crates/steno-server/tests/e2e/node_modules/playwright-core ]; then
  echo "install-e2e: npm ci in crates/steno-server/tests/e2e"
  # playwright-core never downloads a browser by itself; the test drives
  # /usr/bin/chromium.
  npm ci --prefix crates/steno-server/tests/e2e --no-audit --no-fund
fi
