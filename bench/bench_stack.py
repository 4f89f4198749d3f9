"""The whole three-service path (recorder + bridge + ingress) against a direct connection to one fake.

Usage: python bench/bench_stack.py [--sessions 1,10,25,50] [--seconds 20] [--no-pin]

One fake OpenAI Realtime server (tests/support/fake_openai.py: energy VAD on the input audio clock,
`silence_duration_ms` 200, 600 ms scripted reply) runs in its own process. At each load level N:

- **direct**: N paced callers speak the OpenAI Realtime protocol straight to the fake (20 ms frames of
  24 kHz PCM16, base64 `input_audio_buffer.append`) — the floor no platform can beat;
- **rtvoice**: N paced callers speak caller protocol v1 (20 ms frames of 16 kHz PCM16) to `rtvoice up`
  (ingress → bridge → fake, recorder archiving every call), using the same client as `rtvoice call`.

Each caller places calls back to back for `--seconds`. First-audio latency is the one definition of
`rtvoice.core.latency`: end of the caller's speech → first agent audio at the caller. "Added" is rtvoice
minus direct at the same N, for p50 and p99. With pinning (default), rtvoice's services share CPU 0 and
the fake plus all callers share CPU 1, so "sessions per core" is read off CPU 0. CPU is utime+stime
from /proc per service; RSS per session is the slope of the services' summed RSS over the load levels.
Numbers depend on the machine and on what else runs on it: compare within one run, never across days.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from rtvoice.caller.client import CallError, CallOptions, place_call  # noqa: E402
from rtvoice.caller.wavfile import read_wav, speech_end_sample  # noqa: E402
from rtvoice.core.audio import PCM16_16K, PCM16_24K, encode  # noqa: E402
from rtvoice.core.latency import first_audio_latency_from_monotonic  # noqa: E402
from tests.support.speech import write_wav  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
FRAME_S = 0.020
SILENCE_MS = 200
TAIL_SILENCE_S = 1.5
SERVICES = ("recorder", "bridge", "ingress")
RESULTS = ROOT / "bench" / "results"

_FAKE = """
import asyncio, sys
from tests.support.fake_openai import FakeOpenAI, Scenario, VALID_KEY
async def main():
    async with FakeOpenAI(Scenario(reply_audio_ms=600, chunk_ms=40, pace_s=0.02)) as fake:
        print(fake.url, VALID_KEY, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""

AGENT = """apiVersion: rtvoice.io/v1alpha1
kind: VoiceAgent
metadata: {{name: bench, namespace: default}}
spec:
  provider: openai
  modalities: audio
  turnDetection: {{type: server_vad, silenceDurationMs: {silence}}}
  audio: {{input: pcm16_16k, output: pcm16_16k}}
"""


def cpu_parts(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process in seconds (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def cpu_s(pid: int) -> float:
    """utime + stime of a process in seconds (from /proc)."""
    return sum(cpu_parts(pid))


def kernel_s(pid: int) -> float:
    """stime of a process in seconds: its CPU in the kernel (sockets, epoll, futexes, fsync)."""
    return cpu_parts(pid)[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def count_archives(archive_dir: Path) -> tuple[int, int]:
    """(archives written, archives whose manifest says ``complete``) under ``archive_dir``."""
    manifests = [json.loads(p.read_text()) for p in archive_dir.glob("*/manifest.json")]
    return len(manifests), sum(1 for m in manifests if m.get("complete") is True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Level:
    latencies_ms: list[float] = field(default_factory=list)
    session_s: float = 0.0
    failed: int = 0


@dataclass
class Speech:
    pcm16k: np.ndarray
    pcm24k: np.ndarray
    speech_end_s: float
    #: Silence after the question, s: longer calls separate per-call costs from per-second ones.
    pad_s: float = 0.0


def make_speech(tmp: Path, pad_s: float) -> Speech:
    wav = write_wav(tmp / "q.wav", "what is the weather today")
    s16 = read_wav(str(wav), 16000)
    s24 = read_wav(str(wav), 24000)
    end = speech_end_sample(s16, 16000)
    assert end is not None
    return Speech(s16, s24, end / 16000, pad_s)


async def direct_call(url: str, key: str, speech: Speech, level: Level) -> None:
    """One turn straight to the fake: session.update, paced appends, wait for the reply's end."""
    t_open = time.monotonic()
    headers = {"Authorization": f"Bearer {key}"}
    async with connect(url, additional_headers=headers, compression=None, max_size=None) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "type": "realtime",
                        "audio": {
                            "input": {
                                "format": {"type": "audio/pcm", "rate": 24000},
                                "turn_detection": {"type": "server_vad", "silence_duration_ms": SILENCE_MS},
                            }
                        },
                    },
                }
            )
        )
        audio = encode(speech.pcm24k, PCM16_24K) + bytes(int(24000 * (TAIL_SILENCE_S + speech.pad_s)) * 2)
        step = int(24000 * FRAME_S) * 2
        first: float | None = None
        done = asyncio.Event()

        async def reader() -> None:
            nonlocal first
            async for raw in ws:
                evt = json.loads(raw)
                if evt["type"] == "response.output_audio.delta" and first is None:
                    first = time.monotonic()
                elif evt["type"] == "response.done":
                    done.set()
                    return

        task = asyncio.create_task(reader())
        t0 = time.monotonic()
        for i in range(0, len(audio), step):
            await _pace(t0, i // step)
            chunk = base64.b64encode(audio[i : i + step]).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
            if done.is_set() and i // step * FRAME_S > speech.speech_end_s + speech.pad_s:
                break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 10)
        task.cancel()
        if first is None:
            level.failed += 1
        else:
            level.latencies_ms.append(first_audio_latency_from_monotonic(t0 + speech.speech_end_s, first))
    level.session_s += time.monotonic() - t_open


async def rtvoice_call(url: str, token: str, speech: Speech, level: Level) -> None:
    t_open = time.monotonic()
    opts = CallOptions(
        url=url,
        token=token,
        input_format=PCM16_16K,
        output_format=PCM16_16K,
        audio=encode(speech.pcm16k, PCM16_16K),
        hold_s=speech.pad_s,
        speech_end_ms=speech.speech_end_s * 1000,
        timeout_s=15,
    )
    try:
        result = await place_call(opts, on_line=lambda _: None)
    except CallError:
        level.failed += 1
    else:
        if result.first_audio_latency_ms is None:
            level.failed += 1
        else:
            level.latencies_ms.append(result.first_audio_latency_ms)
    level.session_s += time.monotonic() - t_open


async def _pace(t0: float, index: int) -> None:
    delay = t0 + index * FRAME_S - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def run_level(n: int, seconds: float, call: object, *args: object) -> Level:
    level = Level()
    deadline = time.monotonic() + seconds

    async def worker(k: int) -> None:
        await asyncio.sleep(k * FRAME_S * 7 % 1.0)  # spread the start of speech over a second
        while time.monotonic() < deadline:
            await call(*args, level)  # type: ignore[operator]

    await asyncio.gather(*(worker(k) for k in range(n)))
    return level


@contextlib.asynccontextmanager
async def fake_server(pin: bool) -> AsyncIterator[tuple[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _FAKE, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        preexec_fn=(lambda: os.sched_setaffinity(0, {1})) if pin else None,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
    try:
        yield line[0], line[1]
    finally:
        proc.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await proc.wait()


@contextlib.asynccontextmanager
async def rtvoice_up(
    tmp: Path,
    url: str,
    key: str,
    pin: bool,
    workers: int,
    agent_yaml: str | None = None,
    quiet: bool = False,
    up_args: tuple[str, ...] = (),
) -> AsyncIterator[dict[str, Any]]:
    """`rtvoice up` on provider ``url`` (CPU 0 when ``pin``) with ``up_args`` added; yields up.json
    plus ``up_pid``."""
    agent = tmp / "agent.yaml"
    agent.write_text(agent_yaml or AGENT.format(silence=SILENCE_MS))
    state = tmp / "state"
    log = (tmp / "up.log").open("wb")
    args = [sys.executable, "-m", "rtvoice", "up", "--port", "0", "--state-dir", str(state), "-f", str(agent)]
    args += ["--workers", str(workers)]
    args += ["--provider-url", url, *(["--quiet"] if quiet else []), *up_args]
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        env={**os.environ, "OPENAI_API_KEY": key},
        preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if pin else None,
    )  # fmt: skip
    up_file = state / "up.json"
    try:
        deadline = time.monotonic() + 120
        while not up_file.exists():
            if proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError("rtvoice up did not start:\n" + (tmp / "up.log").read_text()[-3000:])
            await asyncio.sleep(0.2)
        info: dict[str, Any] = json.loads(up_file.read_text())
        info["up_pid"] = proc.pid
        yield info
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 120)
        log.close()


def start_profiles(pids: dict[str, list[int]], n: int, seconds: float) -> list[asyncio.Future[None]]:
    """py-spy each service during the middle of a level: flame graph + collapsed stacks.

    Every thread is sampled while it is running (py-spy's default, not `--gil`). With all services on
    one core, `--gil` sampling misleads: a thread preempted while it holds the GIL (inside a socket
    send that woke another process) is counted as busy for as long as the other process runs. Threads
    blocked in fsync count as running too, so the recorder's sync frames show wait, not CPU.
    """
    return [
        asyncio.ensure_future(_spy(ps[0], RESULTS / f"profile-{svc}-{n}sessions", max(1.0, seconds - 4)))
        for svc, ps in pids.items()
    ]


async def _spy(pid: int, stem: Path, duration: float) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    await asyncio.sleep(2.0)  # past the ramp-up
    for fmt, ext in (("flamegraph", "svg"), ("raw", "txt")):
        # Two runs would double the overhead on CPU 0; one run per format, half the time each.
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--rate", "200",
            "--duration", str(int(duration / 2)),
            "--format", fmt, "--output", f"{stem}.{ext}", "--nonblocking",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, {1}),
        )  # fmt: skip
        await proc.wait()


async def finish_profiles(spies: list[asyncio.Future[None]]) -> None:
    if spies:
        await asyncio.gather(*spies)


async def main(
    levels: list[int],
    seconds: float,
    pin: bool,
    profile_at: set[int],
    pad_s: float,
    workers: int,
    up_args: tuple[str, ...],
) -> None:
    if pin:
        os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        speech = make_speech(tmp, pad_s)
        async with fake_server(pin) as (url, key):
            direct = {n: await run_level(n, seconds, direct_call, url, key, speech) for n in levels}
            async with rtvoice_up(tmp, url, key, pin, workers, up_args=up_args) as info:
                pids = {s: [int(p) for p in info["service_pids"][s]] for s in SERVICES}
                caller_url, token = str(info["caller_url"]), str(info["token"])
                await rtvoice_call(caller_url, token, speech, Level())  # warm-up call, not counted
                results: dict[int, tuple[Level, dict[str, float], float]] = {}
                kernel: dict[int, float] = {}
                for n in levels:
                    before = {s: sum(map(cpu_s, p)) for s, p in pids.items()}
                    kernel_before = sum(kernel_s(p) for ps in pids.values() for p in ps)
                    spies = start_profiles(pids, n, seconds) if n in profile_at else []
                    level = await run_level(n, seconds, rtvoice_call, caller_url, token, speech)
                    await finish_profiles(spies)
                    used = {s: sum(map(cpu_s, p)) - before[s] for s, p in pids.items()}
                    kernel[n] = sum(kernel_s(p) for ps in pids.values() for p in ps) - kernel_before
                    rss = sum(rss_mb(p) for ps in pids.values() for p in ps)
                    results[n] = (level, used, rss)
                    await asyncio.sleep(2.0)  # let the last archives finalize before the next level
                archive_dir = Path(info["archive_dir"])
                archives = await asyncio.to_thread(count_archives, archive_dir)
    report(levels, direct, results, kernel, archives, pin)


def report(
    levels: list[int],
    direct: dict[int, Level],
    results: dict[int, tuple[Level, dict[str, float], float]],
    kernel: dict[int, float],
    archives: tuple[int, int],
    pin: bool,
) -> None:
    where = "rtvoice on CPU 0, fake + callers on CPU 1" if pin else "unpinned"
    print(f"first-audio latency, end of caller speech -> first agent audio ({where}); ms")
    print(" N | direct p50  p99 | rtvoice p50  p99 | added p50  p99 | calls ok/failed | CPU s/session-min "
          "(rec bridge ingress = sum) | in kernel | RSS MB")  # fmt: skip
    within: list[int] = []
    rss_points: list[tuple[int, float]] = []
    for n in levels:
        d = direct[n]
        level, used, rss = results[n]
        minutes = level.session_s / 60 or float("nan")
        per = {s: used[s] / minutes for s in SERVICES}
        add50 = pct(level.latencies_ms, 0.5) - pct(d.latencies_ms, 0.5)
        add99 = pct(level.latencies_ms, 0.99) - pct(d.latencies_ms, 0.99)
        if add99 <= 50 and not level.failed:
            within.append(n)
        rss_points.append((n, rss))
        print(
            f"{n:3d} | {pct(d.latencies_ms, 0.5):9.1f} {pct(d.latencies_ms, 0.99):5.1f}"
            f" | {pct(level.latencies_ms, 0.5):10.1f} {pct(level.latencies_ms, 0.99):5.1f}"
            f" | {add50:8.1f} {add99:5.1f} | {len(level.latencies_ms):5d}/{level.failed:<5d}"
            f" | {per['recorder']:.2f} {per['bridge']:.2f} {per['ingress']:.2f} = {sum(per.values()):.2f}"
            f" | {kernel[n] / (sum(used.values()) or float('nan')):8.0%} | {rss:.0f}"
        )
    if len(rss_points) >= 2:
        (n0, r0), (n1, r1) = rss_points[0], rss_points[-1]
        print(f"RSS per session (slope {n0}->{n1} sessions): {(r1 - r0) / (n1 - n0):.2f} MB")
    print(f"largest session count on one core with p99 added <= 50 ms: {max(within) if within else 'none'}")
    print(f"archives written: {archives[0]}, of them complete: {archives[1]}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", default="1,10,25,50", help="comma list of concurrent sessions")
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of calls per load level")
    ap.add_argument("--no-pin", action="store_true", help="do not pin rtvoice and the load to separate CPUs")
    ap.add_argument(
        "--workers", type=int, default=1,
        help="rtvoice up --workers (default 1: every service on the one pinned core)",
    )  # fmt: skip
    ap.add_argument(
        "--pad-s", type=float, default=0.0,
        help="seconds of silence after each question (longer calls: per-call vs per-second costs)",
    )  # fmt: skip
    ap.add_argument(
        "--profile-at", default="", metavar="N,N",
        help="py-spy each service during these load levels "
        "(bench/results/profile-<service>-<N>sessions.svg/.txt)",
    )  # fmt: skip
    a = ap.parse_args()
    profile_at = {int(x) for x in a.profile_at.split(",") if x}
    levels = [int(x) for x in a.sessions.split(",")]
    asyncio.run(main(levels, a.seconds, not a.no_pin, profile_at, a.pad_s, a.workers, ()))
