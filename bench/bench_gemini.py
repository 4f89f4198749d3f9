"""Benchmark of the Gemini Live adapter (``rtvoice.bridge.providers.gemini``); prints numbers only.

- Reconnect gap (old socket out of service → new one accepting audio after ``setupComplete``) for
  ``goAway`` while idle, ``goAway`` during a turn (deferred to ``turnComplete``) and a steer, against the
  fake Gemini Live server on loopback; p50 / p95 / max over N runs.
- Translation CPU: µs per 40 ms ``inlineData`` audio message (JSON + base64 decode → ``AudioFrame``).

Run: ``.venv/bin/python bench/bench_gemini.py [--runs 20]``.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtvoice.bridge.providers.gemini import GeminiProvider
from rtvoice.bridge.providers.gemini.translator import GeminiTurnTracker
from rtvoice.core.settings import parse_settings
from rtvoice.v1 import frames_pb2 as pb
from tests.support.fake_gemini import FakeGeminiServer, FakeTurn
from tests.support.gemini_calls import FrameCollector, eventually, speak
from tests.support.speech import synthesize_pcm16

SETTINGS = parse_settings(
    {"provider": "gemini", "turnDetection": {"type": "server_vad", "silenceDurationMs": 300}}
)


def summary(name: str, values: list[float]) -> None:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    p50 = statistics.median(values)
    print(f"{name:<34} n={len(values):<3} p50={p50:7.2f} ms  p95={p95:7.2f} ms  max={values[-1]:7.2f} ms")


async def reconnect_gaps(runs: int) -> None:
    script = [FakeTurn("a short answer", "question", go_away_ms=5000) for _ in range(runs)]
    async with FakeGeminiServer(script) as fake:
        provider = GeminiProvider(SETTINGS, "test-key", base_url=fake.url)
        await provider.connect()
        col = FrameCollector(provider.events())
        gaps = provider.stats.reconnect_gaps_ms

        async def reconnected(count: int) -> None:
            await eventually(lambda: len(gaps) == count)

        for i in range(runs):  # goAway while idle → reconnect at once
            await fake.go_away(60000)
            await reconnected(i + 1)
        summary("goAway while idle", provider.stats.reconnect_gaps_ms)
        idle = len(provider.stats.reconnect_gaps_ms)
        for i in range(runs):  # goAway at the start of a response → reconnect after turnComplete
            await speak(provider.send_audio, "question", speed=20)
            await reconnected(idle + i + 1)
        summary("goAway during a turn", provider.stats.reconnect_gaps_ms[idle:])
        before = len(provider.stats.reconnect_gaps_ms)
        for i in range(runs):
            await provider.steer(pb.SteerFrame(voice="Kore" if i % 2 else "Puck"))
            await reconnected(before + i + 1)
        summary("steer (idle)", provider.stats.reconnect_gaps_ms[before:])
        lost = fake.audio_bytes_out - col.audio_bytes
        print(f"agent audio lost across {len(fake.connections) - 1} reconnects: {lost} bytes")
        await provider.close()
        await col.finish()


def translation_cpu(messages: int = 5000) -> None:
    pcm = synthesize_pcm16("the quick brown fox jumps over the lazy dog", 24000)[: 24000 * 2 * 40 // 1000]
    raw = json.dumps(
        {
            "serverContent": {
                "modelTurn": {
                    "parts": [
                        {
                            "inlineData": {
                                "mimeType": "audio/pcm;rate=24000",
                                "data": base64.b64encode(pcm).decode(),
                            }
                        }
                    ]
                }
            }
        }
    ).encode()
    provider = GeminiProvider(SETTINGS, "k")
    provider.wire.tracker = GeminiTurnTracker(transcripts=True)
    t0 = time.perf_counter()
    for _ in range(messages):
        provider.link._on_message(raw)
    dt = time.perf_counter() - t0
    print(f"{'server audio message → AudioFrame':<34} {dt / messages * 1e6:7.1f} µs per 40 ms chunk")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    asyncio.run(reconnect_gaps(args.runs))
    translation_cpu()
    return 0


if __name__ == "__main__":
    sys.exit(main())
