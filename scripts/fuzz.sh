#!/usr/bin/env bash
# Fuzzes steno's input side with cargo-fuzz (libFuzzer): the query and
# control-message parsers (target `control`) and the audio front end, client
# messages -> AudioDecoder (Opus, PCM) -> Segmenter (target `audio_frontend`),
# and the Ogg and WebM stream readers (target `containers`).
# See fuzz/fuzz_targets/*.rs for the invariants and docs/reliability.md.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   scripts/fuzz.sh                 # CI: 30 s per target (~2.5 min with the build)
#   scripts/fuzz.sh 1800            # a long run: 30 min per target
#   FUZZ_SANITIZER=address scripts/fuzz.sh 600 audio_frontend
#
# cargo-fuzz needs nightly-only rustc flags (-Z sanitizer, sancov passes);
# RUSTC_BOOTSTRAP=1 lets this machine's stable toolchain accept them.
# Seeds are read from fuzz/corpus/<target>/ (committed, never written); what
# libFuzzer learns goes to fuzz/target/corpus/<target>/ and is kept between
# runs on one machine. A failing input lands in fuzz/artifacts/<target>/ and
# the script exits 1 with the command that replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(control audio_frontend containers)
sanitizer=${FUZZ_SANITIZER:-none}
[[ $seconds =~ ^[0-9]+$ && $seconds -ge 1 && $seconds -le 86400 ]] || {
    echo "fuzz.sh: SECONDS_PER_TARGET must be 1..86400, got '$seconds'" >&2
    exit 2
}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1

started=$(date +%s)
if [[ ${#targets[@]} -eq 1 ]]; then
    cargo fuzz build --sanitizer "$sanitizer" "${targets[0]}"
else
    cargo fuzz build --sanitizer "$sanitizer"
fi
echo "fuzz.sh: built in $(($(date +%s) - started)) s"

failed=0
for target in "${targets[@]}"; do
    work=fuzz/target/corpus/$target
    log=fuzz/target/$target.log
    started_marker=fuzz/target/$target.started
    mkdir -p "$work" "fuzz/artifacts/$target"
    touch "$started_marker"
    echo "fuzz.sh: $target for $seconds s"
    set +e
    # The outer timeout only guards against a hung libFuzzer.
    timeout --kill-after=10 $((seconds + 120)) \
        cargo fuzz run --sanitizer "$sanitizer" "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+ +DONE' "$log" || true
    crash=$(find "fuzz/artifacts/$target" -type f -newer "$started_marker" | head -n 1)
    if [[ $rc -ne 0 || -n $crash ]]; then
        failed=1
        echo "fuzz.sh: $target FAILED (exit $rc); the end of $log:" >&2
        grep -v '^ *at \|^ *[0-9]*: ' "$log" | tail -n 30 >&2
        crash=${crash:-$(ls -t "fuzz/artifacts/$target"/* 2>/dev/null | head -n 1)}
        if [[ -n $crash ]]; then
            echo "fuzz.sh: replay with: RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $sanitizer $target $crash" >&2
        fi
    fi
done
echo "fuzz.sh: done in $(($(date +%s) - started)) s"
exit $failed
