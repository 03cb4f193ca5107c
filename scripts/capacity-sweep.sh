#!/usr/bin/env bash
# Capacity sweep: one fresh release server per step, steno-loadgen at an
# increasing number of conversational users, then docs/capacity.md from the
# per-step reports (JSON + SVG kept under artifacts/capacity/, git-ignored).
#
#   scripts/capacity-sweep.sh                       # steps 1 4 8 16 24 32, 60 s each
#   STEPS="8 24" DURATION=30 scripts/capacity-sweep.sh
#   STENO_WORKERS__COUNT=2 scripts/capacity-sweep.sh  # STENO_* reaches the server
#   QUIET_WAIT=900 scripts/capacity-sweep.sh        # on a shared machine: wait for
#                                                   # quiet before each step
#   KEEP=1 STEPS=16 scripts/capacity-sweep.sh       # redo one step, keep the others
#   REPORT_ONLY=1 scripts/capacity-sweep.sh         # rewrite the doc from the reports
#   MIX=short-turns scripts/capacity-sweep.sh       # turns of at most 5 s of speech
#                                                   # (shared clips + espeak-ng), 1-3 s pauses
#
# Each step is bounded: DURATION + RAMP_UP seconds of conversation, then at
# most DURATION + 30 s for the last finals (an overloaded step has a
# backlog), under a hard limit. The server admits exactly the step's
# users (admission.max_sessions = users) and EXTRA more arrivals must be
# refused, so every step also exercises over_capacity. Run it on a quiet
# machine: the table has a column for the CPU everything else used.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-"1 4 8 16 24 32"}
DURATION=${DURATION:-60}
RAMP_UP=${RAMP_UP:-5}
EXTRA=${EXTRA:-2}
SEED=${SEED:-1}
CORPUS=${CORPUS:-../shared/data/speech}
OUT=${OUT:-artifacts/capacity}
DOC=${DOC:-docs/capacity.md}
MODEL=${MODEL:-models/ggml-tiny.en-q8_0.bin}
MIX=${MIX:-conversational}
case "$MIX" in
    conversational)
        MIX_ARGS=()
        MIX_TEXT="real speech from \`$CORPUS\` (LibriSpeech and others, 2 to
  29 s per utterance) as 20 ms Opus packets at real-time pace with partials
  on, then listens 2 to 5 s (streaming silence), then speaks again" ;;
    short-turns)
        MIX_ARGS=(--max-clip-s 5 --espeak 12 --pause-min 1 --pause-max 3)
        MIX_TEXT="short turns: the clips of \`$CORPUS\` with at most 5 s of speech
  and 12 espeak-ng sentences (2 to 4 s), as 20 ms Opus packets at real-time
  pace with partials on, then listens 1 to 3 s, then speaks again" ;;
    *) echo "MIX is conversational or short-turns, got $MIX" >&2; exit 1 ;;
esac

[ -f "$MODEL" ] || { echo "model $MODEL missing: run \`make model\`" >&2; exit 1; }
[ -f "$CORPUS/manifest.tsv" ] || { echo "speech set $CORPUS/manifest.tsv missing" >&2; exit 1; }
cargo build --release --bin steno --bin steno-loadgen
mkdir -p "$OUT"
[ -n "${KEEP:-}${REPORT_ONLY:-}" ] || rm -f "$OUT"/step-*.json "$OUT"/step-*.svg "$OUT"/step-*.log

# CPU time the whole machine used over 20 s, in % of one core.
machine_busy_pct() {
    local a b c d e f g h x
    read -r x a b c d e f g h x < /proc/stat
    local busy1=$((a + b + c + f + g + h))
    sleep 20
    read -r x a b c d e f g h x < /proc/stat
    echo $(((a + b + c + f + g + h - busy1) / 20))
}

# With QUIET_WAIT=SECONDS, each step first waits (up to that long) until the
# rest of the machine is idle, so builds beside the sweep do not skew it.
wait_quiet() {
    local deadline=$((SECONDS + QUIET_WAIT)) busy
    while [ "$SECONDS" -lt "$deadline" ]; do
        busy=$(machine_busy_pct)
        [ "$busy" -lt 15 ] && return 0
        echo "   machine busy (${busy}% of a core), waiting" >&2
    done
}

echo "machine: $(nproc) cores, $(uptime)"
[ -z "${REPORT_ONLY:-}" ] || STEPS=""
for users in $STEPS; do
    [ "${QUIET_WAIT:-0}" -gt 0 ] && wait_quiet
    prefix="$OUT/step-$(printf %03d "$users")"
    echo "== $users users ($(uptime | sed 's/.*load/load/'))"
    # No `--check`: a step with errors is a result, not a reason to stop.
    STENO_ADMISSION__MAX_SESSIONS=${MAX_SESSIONS:-$users} \
        target/release/steno-loadgen run --spawn-server \
        --corpus "$CORPUS" --users "$users" --extra-users "$EXTRA" \
        --duration "$DURATION" --ramp-up "$RAMP_UP" --seed "$SEED" \
        --drain $((DURATION + 30)) --max-run-s $((2 * DURATION + RAMP_UP + 60)) \
        --progress-s 10 "${MIX_ARGS[@]}" \
        --out "$prefix"
done

table=$(target/release/steno-loadgen table "$OUT"/step-*.json)
# Hand-written findings below this marker survive a rerun.
marker='<!-- findings: written by hand, kept by scripts/capacity-sweep.sh -->'
notes=""
if [ -f "$DOC" ] && grep -qF "$marker" "$DOC"; then
    notes=$(awk -v m="$marker" 'found { print } $0 == m { found = 1 }' "$DOC")
fi
config_env=$(env | grep '^STENO_' | sort | tr '\n' ' ' || true)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //' || echo unknown)

cat > "$DOC" <<EOF
# Capacity

How many live conversational users one steno process serves, measured by
\`scripts/capacity-sweep.sh\` (this file is written by it; per-step JSON
reports and SVG pictures are in \`$OUT/\`, git-ignored).

## The run

- Machine: $(nproc) cores ($cpu), $(free -m | awk '/^Mem:/ {print $2}') MB of memory.
- Model: \`$MODEL\`; server config: defaults of \`config.toml\` with
  \`admission.max_sessions\` = users of the step${config_env:+; environment: \`$config_env\`}.
- Each step: a fresh \`steno serve\` (release build), then
  \`steno-loadgen run --spawn-server --users N --extra-users $EXTRA --duration $DURATION --ramp-up $RAMP_UP --seed $SEED${MIX_ARGS[*]:+ ${MIX_ARGS[*]}}\`.
  Every user streams $MIX_TEXT. $EXTRA more
  users arrive once every slot is taken and must get \`over_capacity\`.
- Written $(date -u +%Y-%m-%dT%H:%MZ).

## Results

$table

## How to read it

- **EoS->final** is from the moment the last voiced packet of an utterance
  left the client to the moment its final arrived: the VAD hangover
  (\`vad.hangover_ms\`, 400 ms) plus queueing plus one Whisper inference plus
  transport. One user shows the floor; the users at which p95 takes off is
  where the worker pool saturates.
- **first partial** is from the first voiced packet to the first partial.
  Partials are shed first under load, so this grows before finals do.
- **WER** is over every utterance said in the step (all files; LibriSpeech
  files alone), normalised as in \`tools/testkit/src/wer.rs\`. It should not move with load:
  if it does, utterances are being cut or lost.
- **speech in** is seconds of speech the users sent per second of
  conversation (the offered load); **workers busy** is model time per wall
  second per worker. Partials fill idle workers, so it is high long before
  finals queue: saturation shows as p95 running away, or as speech in
  above what the pool transcribes (the saturated figure below).
  **server CPU** is % of one core (200% = both cores).
- **others' CPU** is what the rest of the machine used during the step
  (compilers, other tests). Above ~10% the latency columns are noisy:
  rerun the step.
- **degraded** counts the utterances whose final came \`"degraded":true\`:
  it waited past \`workers.degrade_after_ms\` for a worker and was decoded
  with the smaller encoder window (see "Degrading late finals" below).
- **refused** counts the $EXTRA expected \`over_capacity\` refusals per step;
  **errors** and **unexpected closes** must be 0.

## Sizing \`admission.max_sessions\` and \`workers.count\`

- \`workers.count\`: one single-threaded worker per core (the default, 0)
  keeps every core on inference; more workers than cores only adds memory
  and queueing. Compare \`STENO_WORKERS__COUNT\` /
  \`STENO_WORKERS__THREADS_PER_WORKER\` by rerunning the sweep with them set.
- \`admission.max_sessions\`: take the largest step within the latency
  targets above (p50 <= 0.8 s and p95 <= 1.5 s, no errors) and keep ~20%
  headroom for talkative users: the load a session brings is its speaking
  time, not its open time. A deployment whose users speak more than these
  simulated ones (the share is printed under the table) should take
  proportionally fewer. The pool transcribes about **workers x (seconds of
  audio per second of model time)** when saturated (\`final_capacity_per_s\`
  in each JSON report); offered speech must stay well under it: queueing
  adds seconds at p95 from about 70% of it.
- Memory: peak RSS is the model plus one Whisper state per worker plus a
  small per-session cost (the growth per session is printed above); the
  session count is limited by CPU long before memory on this machine.

$marker
EOF
[ -z "$notes" ] || printf '%s\n' "$notes" >> "$DOC"
echo "wrote $DOC"
