#!/usr/bin/env python3
"""faster-whisper's side of scripts/bench-files.sh.

Usage: faster-whisper-run.py MODEL_DIR AUDIO plain|batched OUT.txt

Transcribes AUDIO with the CTranslate2 model in MODEL_DIR (int8, CPU, 2
threads) by `WhisperModel.transcribe(vad_filter=True)` (plain) or
`BatchedInferencePipeline.transcribe(batch_size=8)` (batched, which always
uses its VAD), and writes the text to OUT.txt.
"""
import sys

from faster_whisper import BatchedInferencePipeline, WhisperModel


def main() -> None:
    model_dir, audio, mode, out = sys.argv[1:5]
    model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=2)
    if mode == "plain":
        segments, _ = model.transcribe(audio, language="en", vad_filter=True)
    elif mode == "batched":
        segments, _ = BatchedInferencePipeline(model=model).transcribe(audio, language="en", batch_size=8)
    else:
        sys.exit(f"mode must be plain or batched, got {mode!r}")
    with open(out, "w") as f:
        for s in segments:
            f.write(s.text.strip() + "\n")


if __name__ == "__main__":
    main()
