"""Benchmark of the engine's answer and voice stages: prints numbers, asserts nothing.

- Bundled answer model (SmolLM2-135M via cyllama): load time, first piece, pieces/s, CPU per piece.
- Voices: espeak-ng and Piper (``piper:en_US-joe-medium``): load, first chunk, CPU-s per audio-s.
- Engine, spoken question → first ``response.output_audio.delta`` after ``speech_stopped`` with the
  bundled model, espeak-ng vs Piper (real WebSocket, audio appended at real-time pace).

Run: ``.venv/bin/python bench/bench_localrt_cascade.py [--turns 3]``. Reports the load average, since
the 2-core machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtvoice.localrt.llm import GUIDANCE, get_bundled_model
from rtvoice.localrt.speech import LocalSpeech
from tests.support.localrt import RealtimeTestClient, local_realtime, speech_pcm24k

QUESTIONS = [
    "What is the capital of France?",
    "How many days are in a week?",
    "What color is the sky?",
    "Who wrote Romeo and Juliet?",
]
PHRASES = ["what is the capital of france", "how many days are in a week", "what color is the sky"]


async def bench_llm() -> None:
    model = get_bundled_model()
    t0 = time.perf_counter()
    model.prewarm()
    print(f"bundled model: load {time.perf_counter() - t0:.2f} s")
    for q in QUESTIONS:
        messages = [{"role": "system", "content": GUIDANCE}, {"role": "user", "content": q}]
        cpu0, t0 = time.process_time(), time.perf_counter()
        first, n, text = None, 0, ""
        async for piece in model.pieces(messages):
            first = first if first is not None else time.perf_counter() - t0
            n, text = n + 1, text + piece
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        print(f"  {q!r}: first {1000 * (first or 0):.0f} ms, {n} pieces, {n / wall:.1f}/s, "
              f"{1000 * cpu / max(1, n):.0f} ms CPU/piece -> {text.strip()!r}")  # fmt: skip


def bench_voices() -> None:
    speech = LocalSpeech()
    text = "The capital of France is Paris. It is a large city with many museums."
    for voice in ("marin", "piper:en_US-joe-medium"):
        t0 = time.perf_counter()
        speech.prewarm(voice)
        load = time.perf_counter() - t0
        rate = speech.sample_rate_hz(voice)
        chunks: list[np.ndarray] = []
        first: list[float] = []
        cpu0, t0 = time.process_time(), time.perf_counter()
        speech.stream(text, _collector(chunks, first, t0), voice)
        cpu = time.process_time() - cpu0
        audio_s = sum(c.size for c in chunks) / rate
        print(f"voice {voice}: load {load:.2f} s, first chunk {1000 * first[0]:.0f} ms, "
              f"{cpu / audio_s:.3f} CPU-s per audio-s ({audio_s:.1f} s of audio)")  # fmt: skip


def _collector(
    chunks: list[np.ndarray], first: list[float], t0: float
) -> Callable[[np.ndarray, object], bool]:
    def sink(samples: np.ndarray, _words: object) -> bool:
        if not first:
            first.append(time.perf_counter() - t0)
        chunks.append(samples)
        return True

    return sink


async def bench_engine(turns: int) -> None:
    for voice in ("marin", "piper:en_US-joe-medium"):
        latencies: list[float] = []
        async with local_realtime(PHRASES, llm="bundled", voice=voice) as url:
            async with RealtimeTestClient.connect(url) as client:
                await client.recv()
                for i in range(turns):
                    await client.append_audio(speech_pcm24k(PHRASES[i % len(PHRASES)]), pace_s=0.1)
                    await client.wait_for("input_audio_buffer.speech_stopped", 30)
                    stopped = time.perf_counter()
                    await client.wait_for("response.output_audio.delta", 60)
                    latencies.append(1000 * (time.perf_counter() - stopped))
                    await client.wait_for("response.done", 60)
        p50 = statistics.median(latencies)
        print(f"engine bundled+{voice}: speech_stopped -> first audio p50 {p50:.0f} ms, "
              f"max {max(latencies):.0f} ms over {turns} turns")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    asyncio.run(bench_llm())
    bench_voices()
    asyncio.run(bench_engine(args.turns))


if __name__ == "__main__":
    main()
