"""The official openai SDK's realtime client against steno's /v1/realtime.

Usage: openai_realtime.py MODE BASE_URL TOKEN [PCM_24K_FILE...]

MODE vad: one transcription session with server VAD; the file is streamed
  in 100 ms appends at real-time pace.
MODE manual: turn_detection null; each file is appended (fast) and
  committed by hand, after a commit that is too small and a clear.
MODE full: the server is expected to refuse the session.

Prints every server event as `EVENT <json>`, and at the end
`RESULT <json>` with what the Rust test checks.
"""

import asyncio
import base64
import json
import sys
import time

from openai import AsyncOpenAI
from websockets.exceptions import ConnectionClosed

CHUNK_MS = 100
BYTES_PER_MS = 48  # 24 kHz, 16-bit mono


def log(event):
    data = event.model_dump() if hasattr(event, "model_dump") else event
    print("EVENT " + json.dumps(data), flush=True)
    return data


async def until(conn, types, seen, limit_s=120):
    """Reads events into `seen` until one of `types` comes; returns it."""
    deadline = time.monotonic() + limit_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {types} within {limit_s} s")
        event = log(await asyncio.wait_for(conn.recv(), left))
        seen.append(event)
        if event["type"] in types:
            return event


async def append(conn, pcm, pace):
    for start in range(0, len(pcm), CHUNK_MS * BYTES_PER_MS):
        chunk = pcm[start : start + CHUNK_MS * BYTES_PER_MS]
        await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
        if pace:
            await asyncio.sleep(CHUNK_MS / 1000)


def session(turn_detection):
    return {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "whisper-1", "language": "en"},
                "turn_detection": turn_detection,
            }
        },
    }


async def vad(client, files):
    seen = []
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        created = await until(conn, {"session.created"}, seen)
        await conn.session.update(
            session=session(
                {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 200, "silence_duration_ms": 500}
            )
        )
        updated = await until(conn, {"session.updated"}, seen)
        pcm = open(files[0], "rb").read()
        sender = asyncio.create_task(append(conn, pcm, pace=True))
        completed = 0
        while completed < 2:
            event = await until(conn, {"conversation.item.input_audio_transcription.completed", "error"}, seen)
            if event["type"] == "error":
                raise RuntimeError(f"error event: {event}")
            completed += 1
        await sender
    return {"created": created, "updated": updated, "events": seen}


async def manual(client, files):
    seen = []
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        await until(conn, {"session.created"}, seen)
        await conn.session.update(session=session(None))
        updated = await until(conn, {"session.updated"}, seen)
        # Too little audio: an error event, and the session goes on.
        await append(conn, bytes(40 * BYTES_PER_MS), pace=False)
        await conn.input_audio_buffer.commit(event_id="too_small")
        empty = await until(conn, {"error"}, seen)
        # Cleared audio is never transcribed.
        await append(conn, open(files[1], "rb").read(), pace=False)
        await conn.input_audio_buffer.clear()
        await until(conn, {"input_audio_buffer.cleared"}, seen)
        transcripts = []
        for path in files[:1] + files[2:]:
            await append(conn, open(path, "rb").read(), pace=False)
            await conn.input_audio_buffer.commit()
            await until(conn, {"input_audio_buffer.committed"}, seen)
            done = await until(conn, {"conversation.item.input_audio_transcription.completed", "error"}, seen)
            transcripts.append(done)
    return {"updated": updated, "empty": empty, "completed": transcripts, "events": seen}


async def full(client, _files):
    seen = []
    close = None
    try:
        async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
            async for event in conn:
                seen.append(log(event))
    except ConnectionClosed as e:
        close = {"code": e.rcvd.code if e.rcvd else None, "reason": e.rcvd.reason if e.rcvd else None}
    return {"events": seen, "close": close}


async def main():
    mode, base_url, token, *files = sys.argv[1:]
    client = AsyncOpenAI(api_key=token, base_url=base_url)
    result = await {"vad": vad, "manual": manual, "full": full}[mode](client, files)
    print("RESULT " + json.dumps(result), flush=True)


asyncio.run(main())
