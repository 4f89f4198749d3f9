"""Issue #2 numbers: first-audio latency over N calls on the offline engine, and CPU seconds per
session-minute for each service, measured against a real `rtvoice up` on loopback.

Usage: python bench/bench_e2e.py [--calls 20] [--concurrency 1]
First-audio latency is what `rtvoice call` measures: ms from the end of the caller's speech to the
first agent audio at the caller. It includes the VAD's silence wait (silenceDurationMs, 400 ms in the
phrase-list agent), which is a setting, not processing time: the table shows both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rtvoice.caller.client import CallOptions, place_call  # noqa: E402
from rtvoice.caller.wavfile import read_wav, speech_end_sample  # noqa: E402
from rtvoice.core.audio import PCM16_16K, PCM16_24K, encode  # noqa: E402
from tests.support.speech import write_wav  # noqa: E402
from tests.support.stack import running_up  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime of a process in seconds (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(calls: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        wav = write_wav(tmp_path / "q.wav", "what is the weather today")
        samples = read_wav(str(wav), 16000)
        end = speech_end_sample(samples, 16000)
        assert end is not None
        async with running_up(tmp_path) as up:
            services = ["local-realtime", "recorder", "bridge", "ingress"]
            before = {s: cpu_s(up.pid_of(s)) for s in services}
            latencies: list[float] = []
            sem = asyncio.Semaphore(concurrency)

            async def one() -> None:
                async with sem:
                    opts = CallOptions(
                        url=up.caller_url,
                        token=up.token,
                        input_format=PCM16_16K,
                        output_format=PCM16_24K,
                        audio=encode(samples, PCM16_16K),
                        speech_end_ms=end * 1000 / 16000,
                        timeout_s=30,
                    )
                    result = await place_call(opts, on_line=lambda _: None)
                    if result.first_audio_latency_ms is not None:
                        latencies.append(result.first_audio_latency_ms)

            await asyncio.gather(*(one() for _ in range(calls)))
            await asyncio.sleep(1.0)  # let the last archives finalize
            after = {s: cpu_s(up.pid_of(s)) for s in services}
            manifests = [json.loads(p.read_text()) for p in up.archive_dir.glob("*/manifest.json")]
            session_min = sum(m["duration_ms"] for m in manifests) / 60000
    silence_ms = 400
    print(f"calls: {calls} (concurrency {concurrency}), answered with audio: {len(latencies)}")
    print("first-audio latency at the caller (end of speech -> first agent audio):")
    print(
        f"  p50 {pct(latencies, 0.5):7.1f} ms   p95 {pct(latencies, 0.95):7.1f} ms   "
        f"mean {statistics.fmean(latencies):7.1f} ms"
    )
    print(
        f"  minus the VAD silence wait ({silence_ms} ms): p50 {pct(latencies, 0.5) - silence_ms:6.1f} ms   "
        f"p95 {pct(latencies, 0.95) - silence_ms:6.1f} ms"
    )
    print(f"archived sessions: {len(manifests)}, {session_min:.2f} session-minutes")
    print("CPU seconds per session-minute:")
    for s in services:
        used = after[s] - before[s]
        print(f"  {s:15s} {used / session_min:6.2f} s   ({used:.2f} s total)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=1)
    a = ap.parse_args()
    asyncio.run(main(a.calls, a.concurrency))
