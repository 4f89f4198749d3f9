"""Recorder memory and CPU for a long session fed as fast as possible.

Starts ``rtvoice recorder`` as a child process (local archive in a temp dir), streams a simulated session
of ``--minutes`` minutes (default 60) over one Record stream without real-time pacing: caller audio in
20 ms PCM16 16 kHz frames, an agent answer of 4 s every 10 s (40 ms frames arriving in a burst, as
providers send them), transcript deltas, VAD/response events and spans. Prints the recorder's RSS after
warm-up and at the end (growth must stay flat: target < 20 MB), CPU seconds per session-minute, the
feeding rate and the finalize time.

    .venv/bin/python bench/bench_recorder.py [--minutes 60]

``--fsync-compare`` instead measures what durable acks cost: 1 and 50 concurrent sessions streamed in
real time (one RecordBatch per 40 ms: two 20 ms caller frames and one 40 ms agent frame), each run once
with fdatasync per batch (the default) and once with ``--unsafe-no-fsync``. Prints the recorder's CPU
(% of one core) and the ack latency (batch written -> ack covering it) p50/p99 per run.

    .venv/bin/python bench/bench_recorder.py --fsync-compare [--seconds 10] [--spool-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np

from rtvoice.core.spans import Span
from rtvoice.v1 import frames_pb2 as pb
from rtvoice.v1 import recorder_pb2 as rpb
from rtvoice.v1 import recorder_pb2_grpc

FRAME_MS = 20
AGENT_FRAME_MS = 40
#: Frames per RecordBatch message (the RecorderLink gathers 40 ms of frames per write).
BATCH_FRAMES = 3
TURN_S = 10
ANSWER_S = 4
STARTED_NS = time.time_ns()
TRACE = "ab" * 16


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_split_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_s(pid: int) -> float:
    return sum(cpu_split_s(pid))


async def frames(minutes: float, progress: list[int]) -> AsyncIterator[rpb.RecordFrame]:
    """The frames of the simulated session, in session-time order; ``progress[0]`` = session ms fed."""
    fmt = pb.AudioFormat(encoding=pb.AUDIO_ENCODING_PCM16, sample_rate_hz=16000)
    rng = np.random.default_rng(1)
    caller = [rng.integers(-2000, 2000, 320, dtype=np.int16).tobytes() for _ in range(50)]
    agent = [rng.integers(-4000, 4000, 640, dtype=np.int16).tobytes() for _ in range(25)]
    seq = 1
    start = rpb.RecordStart(
        session=pb.SessionStart(
            session_id="bench-1", agent_namespace="default", agent_name="bench", input_format=fmt,
            output_format=fmt, started_unix_ns=STARTED_NS,
        ),
        agent_settings_json="{}", provider="local", model="bench",
    )  # fmt: skip
    yield rpb.RecordFrame(seq=seq, t_us=0, start=start)
    total_ms = int(minutes * 60_000)
    for t in range(FRAME_MS, total_ms + 1, FRAME_MS):
        seq += 1
        audio = pb.AudioFrame(data=caller[seq % 50], format=fmt)
        yield rpb.RecordFrame(seq=seq, t_us=t * 1000, client=pb.ClientFrame(audio=audio))
        if t % (TURN_S * 1000) == 0:  # a turn: VAD stop, a response, its audio in one burst, transcript
            turn = t // (TURN_S * 1000)
            rid, item = f"resp_{turn}", f"item_{turn}"
            events = [
                pb.ServerFrame(speech_stopped=pb.SpeechStopped(audio_end_ms=t - 300, item_id=f"u{turn}")),
                pb.ServerFrame(response_started=pb.ResponseStarted(response_id=rid)),
            ]
            events += [
                pb.ServerFrame(audio=pb.AudioFrame(data=agent[i % 25], format=fmt, item_id=item))
                for i in range(ANSWER_S * 1000 // AGENT_FRAME_MS)
            ]
            events += [
                pb.ServerFrame(
                    transcript=pb.TranscriptFrame(role=pb.ROLE_ASSISTANT, item_id=item, text="word ")
                )
                for _ in range(10)
            ]
            events.append(pb.ServerFrame(response_done=pb.ResponseDone(response_id=rid, status="completed")))
            for ev in events:
                seq += 1
                yield rpb.RecordFrame(seq=seq, t_us=t * 1000, server=ev)
            at_ns = STARTED_NS + t * 10**6
            span = Span(TRACE, "response", at_ns, at_ns + 10**9, attributes={"response_id": rid})
            seq += 1
            yield rpb.RecordFrame(seq=seq, t_us=t * 1000, span=span.to_proto())
        progress[0] = t
        if seq % 200 == 0:
            await asyncio.sleep(0)
    seq += 1
    yield rpb.RecordFrame(seq=seq, t_us=total_ms * 1000, end=pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP))


async def batches(
    source: AsyncIterator[rpb.RecordFrame], size: int = BATCH_FRAMES
) -> AsyncIterator[rpb.RecordBatch]:
    """Group frames as the bridge's RecorderLink does (it gathers 40 ms: a few frames per message)."""
    batch: list[rpb.RecordFrame] = []
    async for frame in source:
        batch.append(frame)
        if len(batch) >= size or frame.HasField("start") or frame.HasField("end"):
            yield rpb.RecordBatch(frames=batch)
            batch = []
    if batch:
        yield rpb.RecordBatch(frames=batch)


#: ``--recorder-pythonpath``: run the recorder from another source tree (e.g. an older commit exported with
#: ``git archive``) to compare against it.
RECORDER_PYTHONPATH: str | None = None
#: ``--recorder-arg``: extra flags for the recorder (e.g. ``--sync-interval-ms=100``).
RECORDER_ARGS: list[str] = []


async def start_recorder(tmp: str, spool: str, *extra: str) -> tuple[asyncio.subprocess.Process, int]:
    """``rtvoice recorder`` as a child process; returns (process, port)."""
    env = dict(os.environ)
    if RECORDER_PYTHONPATH:
        env["PYTHONPATH"] = RECORDER_PYTHONPATH
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rtvoice", "recorder", "--port", "0", "--log-level", "WARNING",
        "--spool-dir", spool, "--archive-dir", f"{tmp}/archive", *extra,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    return proc, int(json.loads(line.split(b" ", 1)[1])["port"])


async def realtime_session(port: int, sid: str, seconds: float, latencies: list[float]) -> None:
    """One session in real time: a batch per 40 ms; appends each batch's ack latency (s)."""
    fmt = pb.AudioFormat(encoding=pb.AUDIO_ENCODING_PCM16, sample_rate_hz=16000)
    caller = np.random.default_rng(2).integers(-2000, 2000, 320, dtype=np.int16).tobytes()
    agent = np.random.default_rng(3).integers(-4000, 4000, 640, dtype=np.int16).tobytes()
    session = pb.SessionStart(
        session_id=sid,
        agent_name="bench",
        input_format=fmt,
        output_format=fmt,
        started_unix_ns=time.time_ns(),
    )
    start = rpb.RecordStart(session=session)
    sent: dict[int, float] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = recorder_pb2_grpc.RecorderStub(channel).Record()
        await call.write(rpb.RecordBatch(frames=[rpb.RecordFrame(seq=1, start=start)]))

        async def acks() -> None:
            covered = 1
            async for ack in call:
                now = time.perf_counter()
                for seq in [s for s in sent if covered < s <= ack.durable_seq]:
                    latencies.append(now - sent.pop(seq))
                covered = max(covered, ack.durable_seq)
                if ack.finalized:
                    return

        reader = asyncio.create_task(acks())
        seq, t0 = 1, time.perf_counter()
        for i in range(int(seconds * 25)):
            await asyncio.sleep(max(0.0, t0 + i * 0.04 - time.perf_counter()))
            t_us = i * 40_000
            heard = pb.ClientFrame(audio=pb.AudioFrame(data=caller))
            said = pb.ServerFrame(audio=pb.AudioFrame(data=agent))
            frames = [
                rpb.RecordFrame(seq=seq + 1, t_us=t_us, client=heard),
                rpb.RecordFrame(seq=seq + 2, t_us=t_us + 20_000, client=heard),
                rpb.RecordFrame(seq=seq + 3, t_us=t_us, server=said),
            ]
            seq += 3
            sent[seq] = time.perf_counter()
            await call.write(rpb.RecordBatch(frames=frames))
        end = pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP)
        await call.write(
            rpb.RecordBatch(frames=[rpb.RecordFrame(seq=seq + 1, t_us=int(seconds * 1e6), end=end)])
        )
        await asyncio.wait_for(reader, 60)


async def fsync_run(sessions: int, seconds: float, fsync: bool, spool_root: str | None) -> str:
    """One measurement; returns the printed line."""
    with tempfile.TemporaryDirectory(prefix="bench-recorder-", dir=spool_root) as tmp:
        extra = (*RECORDER_ARGS, *(() if fsync else ("--unsafe-no-fsync",)))
        proc, port = await start_recorder(tmp, f"{tmp}/spool", *extra)
        latencies: list[float] = []
        (user0, sys0), t0 = cpu_split_s(proc.pid), time.perf_counter()
        await asyncio.gather(*(realtime_session(port, f"b-{i}", seconds, latencies) for i in range(sessions)))
        user1, sys1 = cpu_split_s(proc.pid)
        wall = time.perf_counter() - t0
        cpu, kernel = (user1 - user0) + (sys1 - sys0), sys1 - sys0
        proc.terminate()
        await proc.wait()
    ms = np.asarray(latencies) * 1000
    p50, p99 = np.percentile(ms, [50, 99]) if ms.size else (float("nan"), float("nan"))
    mode = "on " if fsync else "off"
    return (
        f"sessions {sessions:>3}  fsync {mode}  recorder CPU {100 * cpu / wall:5.1f} % of one core "
        f"(kernel {100 * kernel / wall:4.1f} %) "
        f"({cpu / (sessions * seconds / 60):.2f} CPU s per session-minute)  "
        f"ack latency p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  ({ms.size} batches)"
    )


async def fsync_compare(seconds: float, spool_root: str | None, *, only_on: bool = False) -> None:
    where = spool_root or tempfile.gettempdir()
    fs = os.statvfs(where)
    print(f"spool under {where} ({fs.f_bsize}-byte blocks); {os.cpu_count()} CPUs; {seconds:g} s per run")
    if RECORDER_ARGS:
        print(f"recorder flags: {' '.join(RECORDER_ARGS)}")
    if RECORDER_PYTHONPATH:
        print(f"recorder from {RECORDER_PYTHONPATH} ('fsync on' = that tree's default)")
    for sessions in (1, 50):
        for fsync in (True,) if only_on else (True, False):
            print(await fsync_run(sessions, seconds, fsync, spool_root), flush=True)


async def run(minutes: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-recorder-") as tmp:
        proc, port = await start_recorder(tmp, f"{tmp}/spool")
        pid = proc.pid
        progress = [0]
        samples: list[tuple[int, float]] = []

        async def sample() -> None:
            while True:
                samples.append((progress[0], rss_mb(pid)))
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample())
        rss_start, cpu_start = rss_mb(pid), cpu_s(pid)
        t0 = time.perf_counter()
        end_sent = 0.0
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = recorder_pb2_grpc.RecorderStub(channel).Record(batches(frames(minutes, progress)))
            async for ack in call:
                if ack.finalized:
                    break
                if progress[0] >= minutes * 60_000 and not end_sent:
                    end_sent = time.perf_counter()
        t_done = time.perf_counter()
        sampler.cancel()
        cpu_total = cpu_s(pid) - cpu_start
        rss_end = rss_mb(pid)
        proc.terminate()
        await proc.wait()
        report(Path(tmp, "archive", "bench-1"), minutes, samples, rss_start, rss_end, cpu_total,
               feed_s=(end_sent or t_done) - t0, finalize_s=t_done - (end_sent or t_done))  # fmt: skip


def report(
    folder: Path,
    minutes: float,
    samples: list[tuple[int, float]],
    rss_start: float,
    rss_end: float,
    cpu_total: float,
    *,
    feed_s: float,
    finalize_s: float,
) -> None:
    """Print the numbers."""
    manifest = json.loads((folder / "manifest.json").read_text())
    frames_n = manifest["counts"]["frames"]
    wav_mb = (folder / "audio.wav").stat().st_size / 1e6
    warm_ms = min(5 * 60_000, minutes * 60_000 / 10)
    warm = [r for t, r in samples if t >= warm_ms]
    rss_warm = warm[0] if warm else rss_start
    rss_peak = max((r for t, r in samples if t < minutes * 60_000), default=rss_end)
    print(f"session: {minutes:g} min, {frames_n:,} frames, {manifest['counts']['turns']} turns, "
          f"audio.wav {wav_mb:.1f} MB")  # fmt: skip
    print(f"feed time: {feed_s:.1f} s ({frames_n / max(1e-9, feed_s):,.0f} frames/s)")
    print(f"finalize (end -> finalized ack, incl. the local store): {finalize_s:.2f} s")
    print(f"recorder RSS: start {rss_start:.1f} MB, after warm-up {rss_warm:.1f} MB, "
          f"peak while feeding {rss_peak:.1f} MB, end {rss_end:.1f} MB")  # fmt: skip
    print(f"RSS growth after warm-up: {rss_peak - rss_warm:+.1f} MB (target < 20 MB)")
    marks = []
    for tenth in range(1, 11):
        at = [r for t, r in samples if t >= minutes * 60_000 * tenth / 10]
        if at:
            marks.append(f"{minutes * tenth / 10:g}m {at[0]:.1f}")
    print("RSS (MB) by session time: " + ", ".join(marks))
    print(f"recorder CPU: {cpu_total:.1f} s total, {cpu_total / minutes:.2f} CPU s per session-minute")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=60.0, help="simulated session length (default 60)")
    parser.add_argument("--fsync-compare", action="store_true", help="measure fsync per batch on vs off")
    parser.add_argument("--seconds", type=float, default=10.0, help="--fsync-compare: seconds per run")
    parser.add_argument("--spool-dir", default=None, help="--fsync-compare: folder for the spools")
    parser.add_argument("--recorder-pythonpath", default=None, help="run the recorder from this source tree")
    parser.add_argument("--recorder-arg", action="append", default=[], help="extra recorder flag (repeat it)")
    parser.add_argument("--fsync-only", action="store_true", help="--fsync-compare: skip the fsync-off runs")
    args = parser.parse_args()
    global RECORDER_PYTHONPATH
    RECORDER_PYTHONPATH = args.recorder_pythonpath
    RECORDER_ARGS.extend(args.recorder_arg)
    if args.fsync_compare:
        asyncio.run(fsync_compare(args.seconds, args.spool_dir, only_on=args.fsync_only))
    else:
        asyncio.run(run(args.minutes))


if __name__ == "__main__":
    main()
