"""Benchmark of the realtime-bridge: latency it adds per frame, and CPU per session-minute.

Setup: the bridge runs as its own process (``rtvoice bridge`` code on uvloop, as deployed) against a minimal
OpenAI-protocol provider on loopback (this process); N callers stream over real gRPC. Worst-case traffic:
both directions at once, continuously — the caller sends 20 ms PCM16 16 kHz frames every 20 ms and the
provider sends 20 ms PCM16 24 kHz ``response.output_audio.delta`` events every 20 ms, so the bridge
resamples 16→24 kHz up and 24→16 kHz down.

Measured inside the bridge (instrumented in the bridge process, ``time.perf_counter_ns``):

* down: a provider WebSocket message handed to the OpenAI wire (before JSON parsing) → the resulting
  caller ``AudioFrame`` written to the gRPC stream (decode, translate, event stream, resample, writer
  queue, recorder tee, write completed);
* up: a caller ``AudioFrame`` handed to the session → its ``input_audio_buffer.append`` written to the
  provider socket (validate, resample, base64, send).

CPU: user+system CPU seconds of the bridge process during the streaming window, per session-minute.

Run: ``.venv/bin/python bench/bench_bridge.py [--sessions 1 100] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services"))

from rtvoice.v1 import bridge_pb2_grpc  # noqa: E402
from rtvoice.v1 import frames_pb2 as pb  # noqa: E402

FRAME_MS = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------- bridge side


def serve_instrumented(args: argparse.Namespace) -> int:
    """Bridge process: patch timing hooks into the adapter and the session, serve, dump stats on exit."""
    from rtvoice.bridge import cli
    from rtvoice.bridge.audio_paths import AgentAudioOut
    from rtvoice.bridge.providers.openai import wire as wire_mod
    from rtvoice.bridge.providers.openai.translator import EventTranslator
    from rtvoice.bridge.session import BridgeSession

    down: list[tuple[int, int]] = []  # (arrival ns, latency ns)
    up: list[tuple[int, int]] = []
    last_arrival = [0]
    orig_parse = wire_mod.parse_event

    def parse_event(raw: str | bytes) -> dict[str, Any]:
        last_arrival[0] = time.perf_counter_ns()
        return orig_parse(raw)

    wire_mod.parse_event = parse_event
    orig_delta = EventTranslator._audio_delta

    def audio_delta(self: EventTranslator, evt: dict[str, Any]) -> None:
        arrivals = self.__dict__.setdefault("bench_arrivals", deque())
        arrivals.append(last_arrival[0])
        orig_delta(self, evt)

    EventTranslator._audio_delta = audio_delta  # type: ignore[method-assign]
    orig_agent = AgentAudioOut.on_audio
    orig_caller = BridgeSession._on_caller_audio
    orig_session_init = BridgeSession.__init__

    def session_init(self: BridgeSession, **kw: Any) -> None:
        orig_session_init(self, **kw)
        self.bench_queued = deque()  # type: ignore[attr-defined]

        def written(chunks: int) -> None:  # chunks merged into one written frame
            now = time.perf_counter_ns()
            for _ in range(chunks):
                t0 = self.bench_queued.popleft()  # type: ignore[attr-defined]
                down.append((t0, now - t0))

        self.outbox.on_audio_written = written
        self.agent_out.bench_session = self  # type: ignore[attr-defined]

    def on_agent_audio(self: AgentAudioOut, audio: pb.AudioFrame) -> bool:
        # the bench provider sends one item and no audio.done: one chunk per delta, no resampler tails
        session = self.bench_session  # type: ignore[attr-defined]
        t0 = session.provider.wire.translator.bench_arrivals.popleft() if audio.data else 0
        before = len(session.outbox)
        queued = orig_agent(self, audio)
        if t0 and len(session.outbox) > before:
            session.bench_queued.append(t0)
        return queued

    async def on_caller_audio(self: BridgeSession, frame: pb.ClientFrame) -> None:
        t0 = time.perf_counter_ns()
        await orig_caller(self, frame)
        up.append((t0, time.perf_counter_ns() - t0))

    BridgeSession.__init__ = session_init  # type: ignore[method-assign]
    AgentAudioOut.on_audio = on_agent_audio  # type: ignore[method-assign]
    BridgeSession._on_caller_audio = on_caller_audio  # type: ignore[method-assign]
    try:
        return cli.main(args)
    finally:
        Path(args.stats_file).write_text(json.dumps({"down_ns": down, "up_ns": up}))


# ---------------------------------------------------------------------------------------------- provider


class BenchProvider:
    """Minimal OpenAI GA peer: session handshake, then 20 ms audio deltas every 20 ms; appends discarded."""

    def __init__(self, duty: float, cycle_s: float = 5.0) -> None:
        self.duty = duty
        self.cycle_s = cycle_s
        tone = (np.sin(2 * np.pi * 220 * np.arange(24 * FRAME_MS) / 24000) * 6000).astype("<i2").tobytes()
        self.delta_b64 = base64.b64encode(tone).decode()
        self.appends = 0
        self.deltas = 0

    async def handle(self, ws: Any) -> None:
        session = {"type": "realtime", "id": "sess_bench", "object": "realtime.session"}
        await ws.send(json.dumps({"type": "session.created", "event_id": "e0", "session": session}))
        streamer: asyncio.Task[None] | None = None
        try:
            async for raw in ws:
                evt = json.loads(raw)
                if evt["type"] == "input_audio_buffer.append":
                    self.appends += 1
                elif evt["type"] == "session.update" and streamer is None:
                    await ws.send(
                        json.dumps({"type": "session.updated", "event_id": "e1", "session": session})
                    )
                    streamer = asyncio.create_task(self.stream(ws))
        except websockets.ConnectionClosed:
            pass
        finally:
            if streamer is not None:
                streamer.cancel()

    async def stream(self, ws: Any) -> None:
        head = (
            '{"type":"response.output_audio.delta","event_id":"e","response_id":"resp_b","item_id":"item_b",'
        )
        head += '"output_index":0,"content_index":0,"delta":"'
        text = head + self.delta_b64 + '"}'
        await ws.send(
            json.dumps({"type": "response.created", "event_id": "e2", "response": {"id": "resp_b"}})
        )
        t0 = next_t = time.monotonic()
        phase = (id(ws) % 1000) / 1000 * self.cycle_s  # sessions speak at staggered times
        while True:
            if ((next_t - t0 + phase) % self.cycle_s) < self.duty * self.cycle_s:
                await ws.send(text)
                self.deltas += 1
            next_t += FRAME_MS / 1000
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))


# ---------------------------------------------------------------------------------------------- callers


async def caller(target: str, seconds: float, counts: dict[str, int], started: asyncio.Event) -> None:
    pcm = (np.sin(2 * np.pi * 300 * np.arange(16 * FRAME_MS) / 16000) * 3000).astype("<i2").tobytes()
    fmt = pb.AudioFormat(encoding=pb.AUDIO_ENCODING_PCM16, sample_rate_hz=16000)
    start = pb.ClientFrame(start=pb.SessionStart(input_format=fmt, output_format=fmt))
    outbox: asyncio.Queue[pb.ClientFrame | None] = asyncio.Queue()

    async def requests() -> Any:
        while (frame := await outbox.get()) is not None:
            yield frame

    async with grpc.aio.insecure_channel(target) as channel:
        call = bridge_pb2_grpc.RealtimeBridgeStub(channel).Converse(requests())
        await outbox.put(start)

        async def read() -> None:
            async for frame in call:
                kind = frame.WhichOneof("frame")
                counts[kind] = counts.get(kind, 0) + 1
                if kind == "ready":
                    started.set()

        reader = asyncio.create_task(read())
        try:
            await asyncio.wait_for(started.wait(), 30)
        except TimeoutError:
            counts["not_ready"] = 1
            reader.cancel()
            return
        next_t = time.monotonic()
        seq = 0
        while next_t < started_at(started) + seconds:
            seq += 1
            await outbox.put(pb.ClientFrame(audio=pb.AudioFrame(data=pcm, format=fmt, sequence=seq)))
            counts["sent"] = counts.get("sent", 0) + 1
            next_t += FRAME_MS / 1000
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
        await outbox.put(pb.ClientFrame(end=pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP)))
        await outbox.put(None)
        try:
            await asyncio.wait_for(reader, 30)
        except TimeoutError:
            counts["no_end"] = 1


def started_at(ev: asyncio.Event) -> float:
    t: float = ev.t0  # type: ignore[attr-defined]
    return t


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def stats_ms(samples: list[list[int]]) -> dict[str, float]:
    """p50/p99 of all samples, and p99 once warm (samples arriving ≥ 1 s after the first one)."""
    if not samples:
        return {"p50": float("nan"), "p99": float("nan"), "p99_warm": float("nan"), "n": 0}
    arr = np.array(samples, dtype=np.int64)
    lat = arr[:, 1] / 1e6
    warm = lat[arr[:, 0] >= arr[:, 0].min() + 1_000_000_000]
    return {
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "p99_warm": float(np.percentile(warm, 99)) if warm.size else float("nan"),
        "n": int(lat.size),
    }


async def run(sessions: int, seconds: float, duty: float) -> dict[str, Any]:
    provider = BenchProvider(duty)
    async with websockets.serve(provider.handle, "127.0.0.1", 0, compression=None) as ws_server:
        url = f"ws://127.0.0.1:{ws_server.sockets[0].getsockname()[1]}/v1/realtime"
        with tempfile.TemporaryDirectory() as tmp:
            agent = Path(tmp) / "agent.yaml"
            agent.write_text("spec: {provider: openai, modalities: audio, turnDetection: {type: none}}\n")
            stats = Path(tmp) / "stats.json"
            env = {**os.environ, "RTVOICE_PROVIDER_API_KEY": "sk-bench", "PYTHONPATH": str(ROOT / "services")}
            script = os.environ.get("BENCH_BRIDGE_SCRIPT", __file__)  # a wrapper may profile the bridge
            proc = await asyncio.create_subprocess_exec(
                sys.executable, script, "--serve", "--agent-file", str(agent), "--provider-url", url,
                "--stats-file", str(stats), "--log-level", "WARNING",
                stdout=asyncio.subprocess.PIPE, env=env,
            )  # fmt: skip
            assert proc.stdout is not None
            line = (await proc.stdout.readline()).decode()
            port = json.loads(line.split(" ", 1)[1])["port"]
            target = f"127.0.0.1:{port}"
            counts: list[dict[str, int]] = [{} for _ in range(sessions)]
            events = [asyncio.Event() for _ in range(sessions)]
            t_start = time.monotonic() + 1.0
            for ev in events:
                ev.t0 = t_start  # type: ignore[attr-defined]
            cpu0 = cpu_seconds(proc.pid)
            gen0 = time.process_time()
            wall0 = time.monotonic()
            await asyncio.gather(
                *(caller(target, seconds, c, e) for c, e in zip(counts, events, strict=True))
            )
            wall = time.monotonic() - wall0
            cpu = cpu_seconds(proc.pid) - cpu0
            gen_cpu = time.process_time() - gen0
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
            data = json.loads(stats.read_text())
    received = sum(c.get("audio", 0) for c in counts)
    sent = sum(c.get("sent", 0) for c in counts)
    return {
        "sessions": sessions,
        "wall_s": round(wall, 1),
        "caller_frames_sent": sent,
        "appends_at_provider": provider.appends,
        "provider_deltas": provider.deltas,
        "caller_audio_frames_received": received,
        "down_ms": stats_ms(data["down_ns"]),
        "up_ms": stats_ms(data["up_ns"]),
        "bridge_cpu_s": round(cpu, 2),
        "load_generator_cpu_s": round(gen_cpu, 2),
        "cpu_s_per_session_minute": round(cpu / (sessions * wall / 60), 3),
    }


def fmt_ms(st: dict[str, float]) -> str:
    return f"p50 {st['p50']:.3f} ms p99 {st['p99']:.3f} ms (warm {st['p99_warm']:.3f}) [n={st['n']}]"


def main() -> int:
    if "--serve" in sys.argv:
        from rtvoice.bridge import cli
        from rtvoice.core.service import setup_logging

        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        cli.register(sub)
        argv = [a for a in sys.argv[1:] if a != "--serve"]
        i = argv.index("--stats-file")
        stats_file = argv[i + 1]
        del argv[i : i + 2]
        args = parser.parse_args(["bridge", *argv])
        args.stats_file = stats_file
        setup_logging("bridge", "WARNING")
        return serve_instrumented(args)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--seconds", type=float, default=10.0, help="streaming time per run")
    parser.add_argument(
        "--duty",
        type=float,
        nargs="+",
        default=[1.0, 0.4],
        help="share of time the agent speaks (1 = full duplex all the time; 0.4 = 2 s of every 5 s)",
    )
    opts = parser.parse_args()
    print(f"bridge bench: {os.cpu_count()} CPUs, 20 ms frames, {opts.seconds:g} s per run")
    import uvloop

    for duty in opts.duty:
        for n in opts.sessions:
            r = uvloop.run(run(n, opts.seconds, duty))
            print(
                f"agent speaking {duty:.0%} of the time, {n:4d} session(s): "
                f"down (provider delta -> caller frame) {fmt_ms(r['down_ms'])}; "
                f"up (caller frame -> append) {fmt_ms(r['up_ms'])}; bridge CPU {r['bridge_cpu_s']} s = "
                f"{r['cpu_s_per_session_minute']} CPU-s per session-minute"
            )
            print("      " + json.dumps({k: v for k, v in r.items() if not k.endswith("_ms")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
