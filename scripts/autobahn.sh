#!/usr/bin/env bash
# Autobahn's WebSocket conformance cases against steno's WebSocket stack.
#
# kosoku (PyPI, pinned below) runs the Autobahn TestSuite's own case files as
# a fuzzing client; the server under test is crates/steno-server/examples/autobahn_echo.rs:
# steno's hyper + tokio-tungstenite stack with the production limits
# (Config::default()), echoing instead of transcribing. The verdicts are
# compared with crates/steno-server/tests/autobahn/expected.json: a case that passed there and
# does not pass now fails the run. What is and is not covered:
# docs/reliability.md.
#
# Usage: scripts/autobahn.sh [--update]
#   Runs all 517 cases (seconds once the example is built);
#   --update records this run's verdicts in crates/steno-server/tests/autobahn/expected.json.
#   A few cases: run crates/steno-server/tests/autobahn/run.py by hand with --include CASE.
set -euo pipefail
cd "$(dirname "$0")/.."

KOSOKU_VERSION=0.1.0
venv=target/autobahn-venv
out=target/autobahn
update=()
for arg in "$@"; do
    case $arg in
        --update) update=(--update) ;;
        *) echo "autobahn.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

if ! "$venv/bin/python" -c "import kosoku, importlib.metadata as m; assert m.version('kosoku') == '$KOSOKU_VERSION'" 2>/dev/null; then
    echo "autobahn.sh: installing kosoku $KOSOKU_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kosoku==$KOSOKU_VERSION"
fi

cargo build --quiet -p steno-server --example autobahn_echo
mkdir -p "$out"
# The echo server exits by itself after 15 minutes whatever happens here.
target/debug/examples/autobahn_echo 127.0.0.1:0 900 >"$out/echo.out" 2>"$out/echo.err" &
echo_pid=$!
trap 'kill "$echo_pid" 2>/dev/null || true' EXIT
addr=
for _ in $(seq 1 100); do
    addr=$(sed -n 's/^listening on //p' "$out/echo.out")
    [[ -n $addr ]] && break
    sleep 0.1
done
[[ -n $addr ]] || { echo "autobahn.sh: the echo server did not start" >&2; cat "$out/echo.err" >&2; exit 1; }

# Every case runs: the whole suite takes seconds. Group 9 (messages of 64 KiB
# to 16 MiB) fails by design past session.max_message_bytes, and groups 12
# and 13 (permessage-deflate) are unimplemented: expected.json records both.
timeout --kill-after=10 300 \
    "$venv/bin/python" crates/steno-server/tests/autobahn/run.py "ws://$addr/" \
    --expected crates/steno-server/tests/autobahn/expected.json --results "$out/results.json" \
    --parallelism 2 --limit-s 240 "${update[@]}"
