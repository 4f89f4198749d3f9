"""Benchmark of the offline engine (``rtvoice local-realtime``): prints numbers, asserts nothing.

Parts (each over a real WebSocket to an engine running as its own process, default agent = Whisper
tiny.en + silero-vad + espeak-ng, with the bundled SmolLM2 answers of `rtvoice up`'s embedded agent in
the latency run (``--llm echo`` for the recognition-only floor), unless noted):

- Recognizers alone: CPU-s per utterance (Whisper short window vs 30 s window, pocketsphinx grammar).
- VAD alone: CPU ms per second of audio (silero-vad ONNX vs webrtcvad + energy gate).
- Latency: end of speech (in the audio, appended at real-time pace in 20 ms frames) → first
  ``response.output_audio.delta``, p50/p95, with 1 and with 2 concurrent sessions. Includes the
  500 ms ``silence_duration_ms`` the VAD waits before ending the turn.
- CPU-s per session-minute (engine process CPU over the paced run / minutes of audio streamed by all
  sessions) and the engine process's RSS after the run.
- WER of the user transcripts on the human telephone set (µ-law 8 kHz) and the synthetic set.

Run: ``.venv/bin/python bench/bench_localrt.py [--turns 12] [--skip-wer]``. Other processes on the
machine skew the numbers: report the load (printed first) with them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jiwer
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtvoice.core.audio import resample_once
from rtvoice.localrt.asr import get_recognizer
from rtvoice.localrt.silero import SileroDetector
from rtvoice.localrt.vad import VoiceActivityDetector
from rtvoice.localrt.whisper_asr import load_model
from tests.support.cluster import ServiceProcess, start_service
from tests.support.localrt import RealtimeTestClient
from tests.support.speech_sets import (
    SYNTHETIC_SENTENCES,
    Utterance,
    human_available,
    human_set,
    normalize_words,
    synthetic_set,
)
from tests.support.spoken_turns import configure, spoken_turn, wire_audio

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (``/proc/PID/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (``VmRSS`` of ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def to16k(utt: Utterance) -> np.ndarray:
    return utt.samples if utt.rate_hz == 16000 else resample_once(utt.samples, utt.rate_hz, 16000)


def bench_recognizers(utts: list[Utterance]) -> None:
    model = load_model()
    clips = [to16k(u) for u in utts]
    model.transcribe(clips[0])  # warm-up
    t0 = time.process_time()
    for c in clips:
        model.transcribe(c)
    short = (time.process_time() - t0) / len(clips)
    t0 = time.process_time()
    for c in clips:  # the same decode with the audio padded to a full 30 s window
        model.transcribe(np.concatenate([c, np.zeros(16000 * 30 - c.size, np.int16)])[: 16000 * 27])
    full = (time.process_time() - t0) / len(clips)
    rec = get_recognizer()
    rec.recognize(clips[0], SYNTHETIC_SENTENCES)
    t0 = time.process_time()
    for c in clips:
        rec.recognize(c, SYNTHETIC_SENTENCES)
    grammar = (time.process_time() - t0) / len(clips)
    print(
        f"recognizer CPU-s per utterance: whisper short window {short:.3f}, whisper ~30 s window "
        f"{full:.3f}, pocketsphinx grammar {grammar:.3f} (over {len(clips)} utterances)"
    )


def bench_vad(utts: list[Utterance]) -> None:
    x = np.concatenate([to16k(u) for u in utts])
    for name, vad in (("silero", SileroDetector()), ("webrtc", VoiceActivityDetector())):
        t0 = time.process_time()
        for i in range(0, x.size, 320):
            vad.process(x[i : i + 320])
        cpu = time.process_time() - t0
        print(f"VAD {name}: {cpu / (x.size / 16000) * 1000:.2f} ms CPU per second of audio")


async def engine(log_dir: Path, *args: str) -> ServiceProcess:
    return await start_service("local-realtime", ["--port", "0", *args], log_dir)


async def session_run(url: str, utts: list[Utterance], realtime: bool) -> tuple[list[float], list[str]]:
    """One session speaking ``utts``: (first-audio latencies s, transcripts)."""
    lat, texts = [], []
    async with RealtimeTestClient.connect(url) as client:
        await client.recv()
        await configure(client, wire_audio(utts[0])[0])
        for utt in utts:
            result = await spoken_turn(client, utt, realtime=realtime, tail_ms=1500)
            texts.append(result.text)
            if result.first_audio_s is not None:
                lat.append(result.first_audio_s)
    return lat, texts


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def bench_latency(log_dir: Path, utts: list[Utterance], sessions: int, llm: str) -> None:
    proc = await engine(log_dir, "--llm", llm)
    try:
        url = f"ws://127.0.0.1:{proc.port}/v1/realtime"
        cpu0, t0 = proc_cpu_s(proc.proc.pid), time.perf_counter()
        runs = await asyncio.gather(*(session_run(url, utts, True) for _ in range(sessions)))
        cpu = proc_cpu_s(proc.proc.pid) - cpu0
        wall = time.perf_counter() - t0
        lat = [x for r, _ in runs for x in r]
        audio_min = sessions * sum(u.samples.size / u.rate_hz + 0.4 + 1.5 for u in utts) / 60
        print(
            f"latency (--llm {llm}), {sessions} concurrent session(s), {len(lat)} turns: "
            "end of speech -> first audio "
            f"p50 {statistics.median(lat) * 1000:.0f} ms, p95 {pct(lat, 95) * 1000:.0f} ms, "
            f"max {max(lat) * 1000:.0f} ms; engine CPU {cpu / audio_min:.2f} CPU-s per session-minute "
            f"({cpu:.1f} CPU-s over {wall:.0f} s wall), RSS {proc_rss_mib(proc.proc.pid):.0f} MiB"
        )
    finally:
        await proc.stop()


async def bench_wer(log_dir: Path, name: str, utts: list[Utterance]) -> None:
    proc = await engine(log_dir)
    try:
        _, texts = await session_run(f"ws://127.0.0.1:{proc.port}/v1/realtime", utts, False)
    finally:
        await proc.stop()
    refs = [normalize_words(u.text) for u in utts]
    hyps = [normalize_words(t) or "<nothing>" for t in texts]
    print(f"WER {name} set ({len(utts)} utterances, through the engine): {jiwer.wer(refs, hyps):.3f}")


async def main_async(args: argparse.Namespace) -> None:
    human = human_set() if human_available() else []
    synth = synthetic_set()
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp)
        turns = (human + synth)[: args.turns] if human else synth[: args.turns]
        for sessions in (1, 2):
            await bench_latency(log_dir, turns, sessions, args.llm)
        if not args.skip_wer:
            if human:
                await bench_wer(log_dir, "human", human)
            await bench_wer(log_dir, "synthetic", synth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=12, help="utterances per session in the latency run")
    parser.add_argument("--skip-wer", action="store_true")
    parser.add_argument(
        "--llm",
        default="bundled",
        choices=("bundled", "echo"),
        help="answers in the latency run (bundled = the embedded default agent of rtvoice up)",
    )
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    synth = synthetic_set()
    bench_recognizers(synth[:10])
    bench_vad(synth[:10])
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
