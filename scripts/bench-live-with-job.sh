#!/usr/bin/env bash
# Live latency beside a file job (docs/files.md, "Sharing the worker pool"):
# one release server; USERS conversational users for DURATION s with
# nothing else running, then the job alone, then the same users again while
# a 60-minute file job runs. Prints the loadgen table for both runs and how
# fast the job went alone and beside the live users.
#
#   scripts/bench-live-with-job.sh            # 8 users, 90 s per run
#   USERS=16 DURATION=60 scripts/bench-live-with-job.sh
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=${USERS:-8}
DURATION=${DURATION:-90}
PORT=${PORT:-18431}
out=target/bench/live-with-job
audio=target/bench/files/long60.wav
base="http://127.0.0.1:$PORT"

make -s model MODEL_PROFILE=release >&2
cargo build --release -q --bin steno -p steno-server --bin steno-loadgen -p steno-loadgen
[ -s "$audio" ] || { mkdir -p "$(dirname "$audio")"; python3 scripts/long-form-audio.py "$audio" 60 >&2; }
rm -rf "$out" && mkdir -p "$out"

STENO_FILES__SPOOL_DIR="$out/spool" target/release/steno serve --listen "127.0.0.1:$PORT" >"$out/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -sf "$base/ready" >/dev/null && break; sleep 0.5; done
curl -sf "$base/ready" >/dev/null || { cat "$out/server.log" >&2; exit 1; }

live() {
  target/release/steno-loadgen run --addr "127.0.0.1:$PORT" --server-pid "$pid" \
    --users "$USERS" --duration "$DURATION" --ramp-up 5 --seed 1 --out "$out/$1" >"$out/$1.log" 2>&1
}
# field a.b: that field of the JSON on stdin.
field() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v = v[k]
print(v)' "$1"; }
done_s() { curl -sf "$base/v1/jobs/$id" | field progress.audio_s_done; }

echo "== $USERS users, nothing else" >&2
live alone
id=$(curl -sf "$base/v1/jobs" -F "file=@$audio" -F response_format=text | field id)
sleep 10
a=$(done_s)
sleep 30
b=$(done_s)
alone=$(echo "($b - $a) / 30" | bc -l)
echo "== $USERS users beside job $id" >&2
a=$(done_s)
t0=$(date +%s.%N)
live with-job
b=$(done_s)
beside=$(echo "($b - $a) / ($(date +%s.%N) - $t0)" | bc -l)
curl -sf -X DELETE "$base/v1/jobs/$id" >/dev/null

target/release/steno-loadgen table "$out/alone.json" "$out/with-job.json"
printf 'job alone: %.1f s of audio per s; beside %s live users: %.1f s/s\n' "$alone" "$USERS" "$beside"
