"""Benchmark of the offline engine (``rtvoice.localrt``): prints numbers, asserts nothing.

- ASR real-time factor: default language model vs phrase-list grammar (pocketsphinx, 16 kHz).
- TTS: time to first chunk and real-time factor (espeak-ng via espeakng-loader).
- VAD: CPU per second of audio (webrtcvad + energy gate).
- Engine: end of speech (in the audio) → first ``response.output_audio.delta``, p50/p95 over N turns,
  measured over a real WebSocket with audio appended at real-time pace.

Run: ``.venv/bin/python bench/bench_localrt.py [--turns 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtvoice.localrt.asr import get_recognizer
from rtvoice.localrt.tts import get_synthesizer
from rtvoice.localrt.vad import VoiceActivityDetector
from tests.support.localrt import RealtimeTestClient, local_realtime, speech_pcm24k
from tests.support.speech import synthesize_pcm16

PHRASES = [
    "what is the weather today",
    "turn on the lights in the kitchen please",
    "hello there",
    "book a table for two at seven",
    "what time is it",
]


def bench_asr() -> None:
    rec = get_recognizer()
    rec.prewarm()
    clips = [np.frombuffer(synthesize_pcm16(p), dtype="<i2") for p in PHRASES]
    audio_s = sum(c.size for c in clips) / 16000
    for label, phrases in (("default LM", None), ("phrase list", PHRASES)):
        rec.recognize(clips[0], phrases)  # warm the search
        t0 = time.perf_counter()
        hyps = [rec.recognize(c, phrases) for c in clips]
        rtf = (time.perf_counter() - t0) / audio_s
        exact = sum(h == p for h, p in zip(hyps, PHRASES, strict=True))
        print(f"ASR {label:12s}: RTF {rtf:.3f}  exact {exact}/{len(PHRASES)}")


def bench_tts() -> None:
    synth = get_synthesizer()
    text = "You said: turn on the lights in the kitchen please."
    firsts, rtfs = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        marks: list[tuple[float, int]] = []  # (time, samples) per chunk
        synth.stream(text, lambda s, _w, m=marks: m.append((time.perf_counter(), s.size)) is None)
        firsts.append(marks[0][0] - t0)
        rtfs.append((time.perf_counter() - t0) / (sum(n for _, n in marks) / synth.sample_rate_hz))
    print(f"TTS: first chunk {statistics.median(firsts) * 1000:.1f} ms, RTF {statistics.median(rtfs):.4f}")


def bench_vad() -> None:
    x = np.concatenate([np.frombuffer(synthesize_pcm16(p), dtype="<i2") for p in PHRASES] * 4)
    vad = VoiceActivityDetector()
    t0 = time.process_time()
    for i in range(0, x.size, 320):
        vad.process(x[i : i + 320])
    cpu = time.process_time() - t0
    print(f"VAD: {cpu / (x.size / 16000) * 1000:.2f} ms CPU per second of audio")


async def bench_latency(turns: int) -> None:
    lat: list[float] = []
    async with local_realtime(PHRASES + [f"you said {p}" for p in PHRASES]) as url:
        async with RealtimeTestClient.connect(url) as client:
            await client.recv()
            await client.update_session(
                audio={"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}
            )
            for n in range(turns):
                text = PHRASES[n % len(PHRASES)]
                speech = speech_pcm24k(text, 200, 0)
                tail = b"\0\0" * 24 * 1000
                for i in range(0, len(speech), 960):  # 20 ms frames at real-time pace
                    await client.ws.send(
                        json.dumps(
                            {
                                "type": "input_audio_buffer.append",
                                "audio": base64.b64encode(speech[i : i + 960]).decode(),
                            }
                        )
                    )
                    await asyncio.sleep(0.02)
                speech_end = time.perf_counter()
                first = None
                for i in range(0, len(tail), 960):
                    await client.ws.send(
                        json.dumps(
                            {
                                "type": "input_audio_buffer.append",
                                "audio": base64.b64encode(tail[i : i + 960]).decode(),
                            }
                        )
                    )
                    try:
                        while first is None:
                            ev = json.loads(await asyncio.wait_for(client.ws.recv(), 0.02))
                            if ev["type"] == "response.output_audio.delta":
                                first = time.perf_counter()
                    except TimeoutError:
                        pass
                while first is None:
                    ev = json.loads(await asyncio.wait_for(client.ws.recv(), 10))
                    if ev["type"] == "response.output_audio.delta":
                        first = time.perf_counter()
                while json.loads(await client.ws.recv())["type"] != "response.done":
                    pass
                lat.append((first - speech_end) * 1000)
    q = statistics.quantiles(lat, n=20)
    print(
        f"engine: end of speech -> first audio delta p50 {statistics.median(lat):.0f} ms, "
        f"p95 {q[18]:.0f} ms over {turns} turns (includes the 300 ms silence_duration_ms wait)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    args = parser.parse_args()
    bench_asr()
    bench_tts()
    bench_vad()
    asyncio.run(bench_latency(args.turns))


if __name__ == "__main__":
    main()
