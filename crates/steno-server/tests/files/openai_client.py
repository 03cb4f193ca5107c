"""The official openai SDK against steno: json, verbose_json with words,
srt, and the event stream. Usage: openai_client.py BASE_URL API_KEY FILE.
Prints one line `SDK_RESULT {json}` for the Rust test to check."""
import json
import sys

from openai import OpenAI

base_url, api_key, path = sys.argv[1:4]
client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=300)


def transcribe(**kwargs):
    with open(path, "rb") as f:
        return client.audio.transcriptions.create(model="whisper-1", file=f, **kwargs)


out = {"json": transcribe().text}
v = transcribe(response_format="verbose_json", timestamp_granularities=["word"])
out["verbose"] = {
    "text": v.text,
    "duration": v.duration,
    "language": v.language,
    "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in v.segments],
    "words": [{"word": w.word, "start": w.start, "end": w.end} for w in v.words],
}
out["srt"] = transcribe(response_format="srt")
events = []
for event in transcribe(stream=True):
    events.append({"type": event.type, "delta": getattr(event, "delta", None), "text": getattr(event, "text", None)})
out["stream"] = events
try:
    OpenAI(base_url=base_url, api_key="wrong", max_retries=0).audio.transcriptions.create(
        model="whisper-1", file=open(path, "rb")
    )
    out["wrong_key"] = "accepted"
except Exception as e:  # the SDK's AuthenticationError
    out["wrong_key"] = type(e).__name__
print("SDK_RESULT " + json.dumps(out))
