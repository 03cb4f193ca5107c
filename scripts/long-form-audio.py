#!/usr/bin/env python3
"""Builds the long-form benchmark file from the shared speech set.

Usage: scripts/long-form-audio.py OUT.wav [MINUTES] [SEED]

The 27 recordings of ../shared/data/speech are said again and again in a
shuffled order (a new shuffle each pass, seeded) with a pause of 1 to 3 s
between two utterances, until the file is MINUTES long (default 60). Writes
OUT.wav (16 kHz mono 16-bit), OUT.txt (the reference: every utterance's
transcript in order, one a line) and OUT.tsv (each utterance's file, start
and end in the long file, for timestamp checks). Standard library only.
"""
import random
import sys
import wave
from pathlib import Path

RATE = 16_000


def main() -> None:
    out = Path(sys.argv[1])
    minutes = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    speech = Path(__file__).resolve().parent.parent.parent / "shared/data/speech"
    manifest = speech / "manifest.tsv"
    if not manifest.is_file():
        sys.exit(f"long-form-audio: {manifest} not found (the shared speech set is not beside the checkout)")
    clips = []
    for line in manifest.read_text().splitlines()[1:]:
        if not line.strip():
            continue
        name, _duration, transcript = line.split("\t")[:3]
        with wave.open(str(speech / name), "rb") as w:
            assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2, name
            clips.append((name, transcript, w.readframes(w.getnframes())))
    rng = random.Random(seed)
    target = int(minutes * 60 * RATE)
    out.parent.mkdir(parents=True, exist_ok=True)
    position = 0
    references, spans = [], []
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        while position < target:
            order = clips[:]
            rng.shuffle(order)
            for name, transcript, frames in order:
                pause = int(rng.uniform(1.0, 3.0) * RATE)
                w.writeframes(b"\x00\x00" * pause)
                position += pause
                start = position
                w.writeframes(frames)
                position += len(frames) // 2
                references.append(transcript)
                spans.append(f"{name}\t{start / RATE:.3f}\t{position / RATE:.3f}")
                if position >= target:
                    break
    out.with_suffix(".txt").write_text("\n".join(references) + "\n")
    out.with_suffix(".tsv").write_text("file\tstart_s\tend_s\n" + "\n".join(spans) + "\n")
    words = sum(len(r.split()) for r in references)
    print(f"{out}: {position / RATE / 60:.1f} min, {len(references)} utterances, {words} words")


if __name__ == "__main__":
    main()
