#!/usr/bin/env bash
# Installs the system packages steno needs to build and test, once.
# Safe to run again: it does nothing when everything is present.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in build-essential cmake clang libclang-dev pkg-config libopus-dev espeak-ng sox ffmpeg haproxy; do
  have_pkg "$pkg" || need+=("$pkg")
done
if [ "${STENO_WITH_BROWSER:-0}" = 1 ]; then
  for pkg in chromium; do have_pkg "$pkg" || need+=("$pkg"); done
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: installing ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
