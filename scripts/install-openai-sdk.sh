#!/usr/bin/env bash
# Installs the official openai Python SDK, pinned, into target/openai-venv,
# once: the file API's SDK test (crates/steno-server/tests/files/sdk.rs) and
# the Realtime one (crates/steno-server/tests/realtime.rs) run it against the
# real server. websockets is what the SDK's realtime client needs (the
# `realtime` extra), pinned too. Prints the venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."

OPENAI_VERSION=3.51.0
WEBSOCKETS_VERSION=17.4
venv=target/openai-venv
if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('openai') == '$OPENAI_VERSION'; assert m.version('websockets') == '$WEBSOCKETS_VERSION'" 2>/dev/null; then
    echo "install-openai-sdk: installing openai $OPENAI_VERSION and websockets $WEBSOCKETS_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION" "websockets==$WEBSOCKETS_VERSION" >&2
fi
echo "$PWD/$venv/bin/python"
