"""Where per-frame latency goes: caller → ingress → bridge → provider and back, hop by hop.

Usage: python bench/bench_hops.py [--sessions 1,10] [--no-pin] [--no-json]

One minimal fake OpenAI Realtime server runs inside this process (``websockets``, path
``/v1/realtime``, any key): ``session.created`` on connect, ``session.updated`` for each
``session.update``, and after the 50th ``input_audio_buffer.append`` of a connection (1 s of audio) a
scripted reply: ``response.created``, ten ``response.output_audio.delta`` of 40 ms of 24 kHz PCM16 one
every 40 ms, ``response.output_audio.done``, ``response.done``. It stamps every append's arrival and
every delta's send with ``time.monotonic_ns()`` — the same clock the callers in this process stamp
their sends and receives with, so one-way hop times need no clock sync.

Three paths, the same fake, the same paced callers (150 frames of 20 ms = 3 s, sent on a wall-clock
schedule, each send stamped; hang-up once the reply is done):

- **direct**: the caller speaks the Realtime protocol straight to the fake (24 kHz base64 appends): the floor;
- **bridge**: the caller speaks gRPC ``RealtimeBridge.Converse`` straight to the bridge (16 kHz frames,
  the internal token of the state dir), skipping the ingress;
- **full**: the caller speaks caller protocol v1 to the ingress (the whole path; the recorder archives it).

Measures, per path and load level (N concurrent sessions, start phases spread over one 20 ms frame):

- **inbound**: fake arrival of the append a caller frame triggered minus that frame's send. Alignment is
  by audio position, not by message count: each append's cumulative sample count (24 kHz) is mapped
  back to the caller frame whose arrival produced it, after subtracting the resampler's hold (the
  16→24 kHz stream resampler keeps a few samples; it is measured per session as frames × 480 minus the
  samples received). When every frame produced one append this is index k ↔ k; when the resampler
  swallowed the first frame it is "match from the end"; a frame that produced no append of its own
  (merged by the ingress uplink when its writer is behind) is charged to the append that carried it.
- **first audio**: caller receipt of the first agent audio minus the fake's send of the first delta;
  **per delta**: receipt of the agent audio message that carries delta j minus the send of delta j,
  aligned the same way by audio position at the caller (16 kHz, or 24 kHz direct). Message counts do
  not match deltas one to one through the bridge: its 24→16 kHz filter works in blocks (its hold varies
  up to ~20 ms of audio) and flushes its tail as one extra message at ``response.output_audio.done``,
  and its outbox merges chunks when its writer is behind — a delta whose audio ends inside a later
  message ("folded") is charged to that message.

The split: bridge hop = bridge − direct, ingress hop = full − bridge (p50 and p99, inbound and outbound).
With pinning (default) rtvoice (recorder, bridge, ingress) runs on CPU 0, this process (fake + callers)
on CPU 1. Numbers depend on the machine and what else runs on it: compare within one run.
Writes ``bench/results/hops.json`` unless ``--no-json``; nothing else.
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
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
import grpc.aio
import numpy as np
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench import bench_stack
from rtvoice.core.audio import PCM16_16K
from rtvoice.core.internal_auth import call_metadata, credentials_from
from rtvoice.v1 import bridge_pb2_grpc
from rtvoice.v1 import frames_pb2 as pb

FRAME_NS = 20_000_000
FRAMES = 150  # 3 s per session
SAMPLES_16K = 320  # one 20 ms frame
SAMPLES_24K = 480
TRIGGER_AT = 50  # appends before the scripted reply (1 s)
DELTAS = 10
DELTA_NS = 40_000_000
DELTA_SAMPLES = 960  # 40 ms at 24 kHz
#: Each session sends a constant (DC) level of (index + 1) × LEVEL_STEP, so the fake can tell which
#: caller a provider connection belongs to (resampling keeps a DC level).
LEVEL_STEP = 100  # up to 320 sessions within PCM16
PATHS = ("direct", "bridge", "full")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DONE_TIMEOUT_S = 10.0
TICKS = os.sysconf("SC_CLK_TCK")

AGENT = bench_stack.AGENT.format(silence=bench_stack.SILENCE_MS)  # the same agent as bench_stack


def now_ns() -> int:
    return time.monotonic_ns()


# --------------------------------------------------------------------------------------- fake provider


@dataclass
class FakeConn:
    """One provider connection: per append its arrival (ns) and cumulative 24 kHz samples; delta sends."""

    arrivals: list[int] = field(default_factory=list)
    cum_samples: list[int] = field(default_factory=list)
    delta_sent: list[int] = field(default_factory=list)
    level: int | None = None
    samples: int = 0

    @property
    def session(self) -> int | None:
        """The caller index encoded in the audio's DC level."""
        if self.level is None:
            return None
        return round(self.level / LEVEL_STEP) - 1


def _b64_len(s: str) -> int:
    """Decoded length of base64 text without decoding it."""
    pad = 2 if s.endswith("==") else 1 if s.endswith("=") else 0
    return len(s) * 3 // 4 - pad


class FakeRealtime:
    """A minimal OpenAI Realtime (GA shape) server with a scripted reply; see the module docstring."""

    def __init__(self) -> None:
        self.conns: list[FakeConn] = []
        self.url = ""
        self._tasks: set[asyncio.Task[None]] = set()
        tone = (3000 * np.sin(2 * np.pi * 440 * np.arange(DELTA_SAMPLES) / 24000)).astype("<i2")
        self._delta_b64 = base64.b64encode(tone.tobytes()).decode("ascii")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeRealtime]:
        async with serve(self._handle, "127.0.0.1", 0, compression=None, max_size=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}/v1/realtime"
            yield self

    async def _handle(self, ws: ServerConnection) -> None:
        if ws.request is None or not ws.request.path.startswith("/v1/realtime"):
            await ws.close(1008, "unknown path")
            return
        conn = FakeConn()
        self.conns.append(conn)
        ids = _Ids()
        session: dict[str, Any] = {"type": "realtime", "object": "realtime.session", "id": ids.next("sess")}
        await ids.send(ws, "session.created", session=session)
        try:
            async for raw in ws:
                t = now_ns()
                if isinstance(raw, bytes):
                    continue
                evt = json.loads(raw)
                etype = evt.get("type")
                if etype == "input_audio_buffer.append":
                    audio: str = evt["audio"]
                    conn.samples += _b64_len(audio) // 2
                    conn.arrivals.append(t)
                    conn.cum_samples.append(conn.samples)
                    if len(conn.arrivals) == TRIGGER_AT:
                        pcm = np.frombuffer(base64.b64decode(audio), dtype="<i2")
                        conn.level = int(np.median(pcm))
                        task = asyncio.create_task(self._reply(ws, conn, ids))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                elif etype == "session.update":
                    session = {**session, **(evt.get("session") or {})}
                    await ids.send(ws, "session.updated", session=session)
        except ConnectionClosed:
            pass

    async def _reply(self, ws: ServerConnection, conn: FakeConn, ids: _Ids) -> None:
        rid, iid = ids.next("resp"), ids.next("item")
        part = {"response_id": rid, "item_id": iid, "output_index": 0, "content_index": 0}
        response = {"id": rid, "object": "realtime.response", "status": "in_progress", "output": []}
        try:
            await ids.send(ws, "response.created", response=response)
            t0 = now_ns()
            for j in range(DELTAS):
                await sleep_until(t0 + j * DELTA_NS)
                evt = {"type": "response.output_audio.delta", "event_id": ids.next("event"), **part}
                text = json.dumps({**evt, "delta": self._delta_b64})
                conn.delta_sent.append(now_ns())
                await ws.send(text)
            await ids.send(ws, "response.output_audio.done", **part)
            usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
            done = {**response, "status": "completed", "usage": usage}
            await ids.send(ws, "response.done", response=done)
        except ConnectionClosed:
            pass


class _Ids:
    def __init__(self) -> None:
        self._n = 0

    def next(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n:06d}"

    async def send(self, ws: ServerConnection, etype: str, **fields: Any) -> None:
        await ws.send(json.dumps({"type": etype, "event_id": self.next("event"), **fields}))


# --------------------------------------------------------------------------------------------- callers


@dataclass
class CallerRun:
    index: int
    sent: list[int] = field(default_factory=list)
    received: list[int] = field(default_factory=list)
    #: cumulative agent audio samples (in the caller's output rate) after each received message
    received_cum: list[int] = field(default_factory=list)
    error: str = ""

    def got(self, t_ns: int, samples: int) -> None:
        self.received.append(t_ns)
        self.received_cum.append((self.received_cum[-1] if self.received_cum else 0) + samples)


async def sleep_until(t_ns: int) -> None:
    delay = t_ns - now_ns()
    if delay > 0:
        await asyncio.sleep(delay / 1e9)


async def paced(run: CallerRun, send: Callable[[int], Awaitable[None]]) -> None:
    """FRAMES sends on a 20 ms wall-clock schedule; each send's start is stamped."""
    t0 = now_ns()
    for k in range(FRAMES):
        await sleep_until(t0 + k * FRAME_NS)
        run.sent.append(now_ns())
        await send(k)


def dc_frame(index: int, samples: int) -> bytes:
    return np.full(samples, LEVEL_STEP * (index + 1), dtype="<i2").tobytes()


async def direct_session(run: CallerRun, url: str) -> None:
    update = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "output_modalities": ["audio"],
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None},
                "output": {"format": {"type": "audio/pcm", "rate": 24000}},
            },
        },
    }
    b64 = base64.b64encode(dc_frame(run.index, SAMPLES_24K)).decode("ascii")
    append = '{"type":"input_audio_buffer.append","audio":"' + b64 + '"}'
    headers = {"Authorization": "Bearer sk-bench"}
    async with connect(url, additional_headers=headers, compression=None, max_size=None) as ws:
        await ws.send(json.dumps(update))
        while json.loads(await ws.recv()).get("type") != "session.updated":
            pass
        done = asyncio.Event()

        async def reader() -> None:
            async for raw in ws:
                t = now_ns()
                evt = json.loads(raw)
                etype = evt.get("type")
                if etype == "response.output_audio.delta":
                    run.got(t, _b64_len(evt["delta"]) // 2)
                elif etype == "response.done":
                    done.set()

        task = asyncio.create_task(reader())
        try:
            await paced(run, lambda _k: ws.send(append))
            await asyncio.wait_for(done.wait(), DONE_TIMEOUT_S)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def bridge_session(
    run: CallerRun, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] | None
) -> None:
    fmt = PCM16_16K.to_proto()
    start = pb.SessionStart(
        session_id=uuid.uuid4().hex,
        agent_namespace="default",
        agent_name="bench",
        input_format=fmt,
        output_format=fmt,
        started_unix_ns=time.time_ns(),
    )
    call = bridge_pb2_grpc.RealtimeBridgeStub(channel).Converse(metadata=metadata)
    await call.write(pb.ClientFrame(start=start))
    while True:
        first = await call.read()
        if not isinstance(first, pb.ServerFrame):
            raise RuntimeError("the bridge closed the stream before ready")
        kind = first.WhichOneof("frame")
        if kind == "ready":
            break
        if kind in ("end", "error"):
            raise RuntimeError(f"the bridge refused the session: {first}")
    done = asyncio.Event()

    async def reader() -> None:
        while True:
            frame = await call.read()
            t = now_ns()
            if not isinstance(frame, pb.ServerFrame):
                return
            kind = frame.WhichOneof("frame")
            if kind == "audio" and frame.audio.data:
                run.got(t, len(frame.audio.data) // 2)
            elif kind == "response_done":
                done.set()
            # After ``end`` read on to the stream's end: cancelling the RPC while the handler still
            # closes the recorder link would cancel the handler's cleanup (the bridge then counts the
            # session as live until its drain timeout).

    data = dc_frame(run.index, SAMPLES_16K)

    async def send(k: int) -> None:
        audio = pb.AudioFrame(
            data=data, format=fmt, sequence=k + 1, capture_ts_ms=time.time_ns() // 1_000_000
        )
        await call.write(pb.ClientFrame(audio=audio))

    task = asyncio.create_task(reader())
    try:
        await paced(run, send)
        await asyncio.wait_for(done.wait(), DONE_TIMEOUT_S)
        await call.write(pb.ClientFrame(end=pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP)))
        await call.done_writing()
        await asyncio.wait_for(asyncio.shield(task), 10)
    finally:
        if not task.done():
            task.cancel()
            call.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def full_session(run: CallerRun, url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(url, additional_headers=headers, compression=None, max_size=4 << 20) as ws:
        start = {"type": "session.start", "input_format": "pcm16_16k", "output_format": "pcm16_16k"}
        await ws.send(json.dumps(start))
        while True:
            evt = json.loads(await ws.recv())
            if evt.get("type") == "session.started":
                break
            if evt.get("type") == "session.ended":
                raise RuntimeError(f"the ingress ended the session: {evt}")
        done = asyncio.Event()

        async def reader() -> None:
            async for msg in ws:
                t = now_ns()
                if isinstance(msg, bytes):
                    run.got(t, len(msg) // 2)
                    continue
                etype = json.loads(msg).get("type")
                if etype == "response.done":
                    done.set()
                elif etype == "session.ended":
                    return

        data = dc_frame(run.index, SAMPLES_16K)
        task = asyncio.create_task(reader())
        try:
            await paced(run, lambda _k: ws.send(data))
            await asyncio.wait_for(done.wait(), DONE_TIMEOUT_S)
            await ws.send(json.dumps({"type": "session.end"}))
            await asyncio.wait_for(asyncio.shield(task), 5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# ---------------------------------------------------------------------------------------------- stack


@dataclass
class Stack:
    caller_url: str
    token: str
    bridge: str
    metadata: tuple[tuple[str, str], ...] | None
    pids: dict[str, list[int]]
    #: the CPUs rtvoice may run on, and every rtvoice process (services and the `up` supervisor)
    cpus: set[int] = field(default_factory=set)
    all_pids: list[int] = field(default_factory=list)


@contextlib.asynccontextmanager
async def rtvoice_up(tmp: Path, provider_url: str, pin: bool) -> AsyncIterator[Stack]:
    async with bench_stack.rtvoice_up(tmp, provider_url, "sk-bench", pin, 1, AGENT, quiet=True) as info:
        ingress_pid = int(info["pids"]["ingress"])
        raw = await asyncio.to_thread(Path(f"/proc/{ingress_pid}/cmdline").read_bytes)
        cmdline = raw.split(b"\0")
        bridge = cmdline[cmdline.index(b"--bridge") + 1].decode().split(",")[0]
        creds = credentials_from(str(tmp / "state" / "internal-token"))
        pids = {s: [int(p) for p in ps] for s, ps in info["service_pids"].items()}
        up_pid = int(info["up_pid"])
        all_pids = [up_pid, *(p for ps in pids.values() for p in ps)]
        cpus = set(os.sched_getaffinity(up_pid))
        metadata = call_metadata(creds)
        yield Stack(str(info["caller_url"]), str(info["token"]), bridge, metadata, pids, cpus, all_pids)


# ------------------------------------------------------------------------------------------- analysis


@dataclass
class PathResult:
    inbound_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    delta_ms: list[float] = field(default_factory=list)
    ok: int = 0
    failed: int = 0
    frames: int = 0
    appends: int = 0
    #: frames that did not trigger an append of their own (charged to the append that carried them)
    folded: int = 0
    #: agent audio messages at the caller, and deltas without a message of their own
    messages: int = 0
    delta_folded: int = 0
    holds: list[int] = field(default_factory=list)
    #: while the sessions ran: % of rtvoice's CPUs used by rtvoice, and by other processes of the machine
    cpu_rtvoice_pct: float = float("nan")
    cpu_other_pct: float = float("nan")
    errors: list[str] = field(default_factory=list)


def align(
    sent: list[int], arrivals: list[int], cum: list[int], unit: int, hold: int = 0, slack: int = 0
) -> tuple[list[float], int]:
    """Per chunk k of the sender (``unit`` samples each, sent at ``sent[k]``): arrival of the message
    chunk k released, minus ``sent[k]``, in ms.

    ``cum`` is the receiver's cumulative sample count after each message (in the receiver's rate; ``unit``
    samples of it per chunk). A message is attributed to chunk ceil((cum + hold - slack) / unit) - 1:
    the chunk whose arrival released it when a resampler in between holds back ``hold`` samples give or
    take ``slack`` (inbound: a steady hold, slack half a chunk), or anything from 0 to one chunk (outbound:
    hold 0, slack 0). Returns (latencies, chunks without a message of their own — charged to the next
    message, the one that carried them)."""
    trigger = [-(-(c + hold - slack) // unit) - 1 for c in cum]  # integer ceil
    out: list[float] = []
    folded = 0
    i = 0
    for k, t_sent in enumerate(sent):
        while i < len(trigger) and trigger[i] < k:
            i += 1
        if i == len(trigger):
            break
        if trigger[i] != k:
            folded += 1
        out.append((arrivals[i] - t_sent) / 1e6)
    return out, folded


def analyse(path: str, runs: list[CallerRun], conns: list[FakeConn]) -> PathResult:
    res = PathResult()
    by_session = {c.session: c for c in conns if c.session is not None}
    out_unit = DELTA_SAMPLES if path == "direct" else DELTA_SAMPLES * 2 // 3  # 24 kHz or 16 kHz samples
    for run in runs:
        conn = by_session.get(run.index)
        if run.error or conn is None or len(run.sent) != FRAMES or not run.received or not conn.cum_samples:
            res.failed += 1
            res.errors.append(run.error or f"session {run.index}: no provider connection or no reply")
            continue
        res.ok += 1
        # Inbound: the 16->24 kHz resampler holds a constant few samples; measured from the totals.
        hold = FRAMES * SAMPLES_24K - conn.cum_samples[-1]
        lat, folded = align(run.sent, conn.arrivals, conn.cum_samples, SAMPLES_24K, hold, SAMPLES_24K // 2)
        res.inbound_ms += lat
        res.holds.append(hold)
        res.folded += folded
        res.frames += len(run.sent)
        res.appends += len(conn.arrivals)
        res.messages += len(run.received)
        if conn.delta_sent:
            res.first_ms.append((run.received[0] - conn.delta_sent[0]) / 1e6)
            # Outbound: the 24->16 kHz filter works in blocks, its hold varies below one delta.
            lat, folded = align(conn.delta_sent, run.received, run.received_cum, out_unit)
            res.delta_ms += lat
            res.delta_folded += folded
    return res


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# ------------------------------------------------------------------------------------------------ run


async def run_path(
    path: str, n: int, fake: FakeRealtime, stack: Stack, channel: grpc.aio.Channel
) -> PathResult:
    start = len(fake.conns)
    runs = [CallerRun(k) for k in range(n)]

    async def one(run: CallerRun) -> None:
        await asyncio.sleep(run.index * FRAME_NS / n / 1e9)  # spread frame phases over one frame
        try:
            if path == "direct":
                await direct_session(run, fake.url)
            elif path == "bridge":
                await bridge_session(run, channel, stack.metadata)
            else:
                await full_session(run, stack.caller_url, stack.token)
        except Exception as err:
            run.error = f"session {run.index}: {type(err).__name__}: {err}"

    before = cpu_snapshot(stack)
    await asyncio.gather(*(one(r) for r in runs))
    after = cpu_snapshot(stack)
    await asyncio.sleep(0.3)  # let the provider sockets close
    res = analyse(path, runs, fake.conns[start:])
    res.cpu_rtvoice_pct, res.cpu_other_pct = cpu_shares(before, after, len(stack.cpus))
    return res


def _busy_ticks(cpus: set[int]) -> int:
    """Non-idle ticks of ``cpus`` (user nice system irq softirq steal) from /proc/stat."""
    total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *vals = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            v = [int(x) for x in vals]
            total += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return total


def _proc_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def cpu_snapshot(stack: Stack) -> tuple[float, int, int]:
    """(monotonic s, busy ticks of rtvoice's CPUs, ticks used by rtvoice's processes)."""
    return time.monotonic(), _busy_ticks(stack.cpus), sum(_proc_ticks(p) for p in stack.all_pids)


def cpu_shares(
    before: tuple[float, int, int], after: tuple[float, int, int], ncpu: int
) -> tuple[float, float]:
    """(% of rtvoice's CPUs used by rtvoice, % used by everything else) between two snapshots."""
    wall = (after[0] - before[0]) * TICKS * max(1, ncpu)
    if wall <= 0:
        return float("nan"), float("nan")
    mine = after[2] - before[2]
    busy = after[1] - before[1]
    return 100 * mine / wall, 100 * max(0, busy - mine) / wall


async def main(levels: list[int], pin: bool, write_json: bool) -> None:
    if pin:
        os.sched_setaffinity(0, {1})
    load_before = os.getloadavg()
    results: dict[int, dict[str, PathResult]] = {}
    pinned: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-hops-") as tmp_name:
        async with FakeRealtime().running() as fake, rtvoice_up(Path(tmp_name), fake.url, pin) as stack:
            for svc, ps in stack.pids.items():
                pinned[svc] = sorted(os.sched_getaffinity(ps[0]))
            pinned["bench (fake + callers)"] = sorted(os.sched_getaffinity(0))
            channel = grpc.aio.insecure_channel(stack.bridge, options=[("grpc.enable_retries", 0)])
            try:
                await asyncio.wait_for(channel.channel_ready(), 10)
                for path in PATHS:  # warm-up, not counted (first-call imports, connection setup)
                    await run_path(path, 1, fake, stack, channel)
                for n in levels:
                    results[n] = {path: await run_path(path, n, fake, stack, channel) for path in PATHS}
            finally:
                await channel.close()
    load_after = os.getloadavg()
    report(levels, results, pinned, load_before, load_after)
    if write_json:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = {
            "pinned": pinned,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "levels": {
                str(n): {path: summary(r) for path, r in by_path.items()} for n, by_path in results.items()
            },
        }
        (RESULTS / "hops.json").write_text(json.dumps(out, indent=2) + "\n")


def summary(r: PathResult) -> dict[str, Any]:
    return {
        "sessions_ok": r.ok,
        "sessions_failed": r.failed,
        "frames": r.frames,
        "appends": r.appends,
        "folded_frames": r.folded,
        "resampler_hold_samples": sorted(set(r.holds)),
        "agent_audio_messages": r.messages,
        "folded_deltas": r.delta_folded,
        "inbound_ms": {f"p{q}": pct(r.inbound_ms, q) for q in (50, 90, 99)},
        "first_audio_ms": {f"p{q}": pct(r.first_ms, q) for q in (50, 99)},
        "per_delta_ms": {f"p{q}": pct(r.delta_ms, q) for q in (50, 99)},
        "cpu_rtvoice_pct": r.cpu_rtvoice_pct,
        "cpu_other_pct": r.cpu_other_pct,
        "errors": r.errors[:5],
    }


def report(
    levels: list[int],
    results: dict[int, dict[str, PathResult]],
    pinned: dict[str, list[int]],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    cpus = ", ".join(f"{svc} on CPU {','.join(map(str, c))}" for svc, c in pinned.items())
    cpu_label = ",".join(map(str, pinned.get("bridge", [])))
    print(f"machine: {os.cpu_count()} CPUs; {cpus}")
    print("load avg (1/5/15 min): before " + " ".join(f"{x:.2f}" for x in load_before)
          + ", after " + " ".join(f"{x:.2f}" for x in load_after))  # fmt: skip
    print(f"each session: {FRAMES} frames of 20 ms paced in real time; reply of {DELTAS} × 40 ms after 1 s")
    print()
    print("inbound: caller send of frame k -> fake arrival of the append it triggered, ms")
    head = "  N path   | ok/fail | frames appends folded hold |   p50   p90   p99"
    print(f"{head} | CPU {cpu_label} rtvoice/other %")
    for n in levels:
        for path in PATHS:
            r = results[n][path]
            hold = "/".join(map(str, sorted(set(r.holds)))) or "-"
            print(
                f"{n:3d} {path:6s} | {r.ok:3d}/{r.failed:<3d} | {r.frames:6d} {r.appends:7d} {r.folded:6d}"
                f" {hold:>4s} | {pct(r.inbound_ms, 50):5.2f} {pct(r.inbound_ms, 90):5.2f}"
                f" {pct(r.inbound_ms, 99):5.2f} | {r.cpu_rtvoice_pct:8.0f} / {r.cpu_other_pct:<3.0f}"
            )
    print()
    print("outbound: fake send of delta j -> caller receipt of the audio message that carries it, ms")
    print("  N path   | deltas msgs folded | first audio p50   p99 | per delta p50   p90   p99")
    for n in levels:
        for path in PATHS:
            r = results[n][path]
            print(
                f"{n:3d} {path:6s} | {len(r.delta_ms):6d} {r.messages:4d} {r.delta_folded:6d}"
                f" | {pct(r.first_ms, 50):15.2f} {pct(r.first_ms, 99):5.2f}"
                f" | {pct(r.delta_ms, 50):13.2f} {pct(r.delta_ms, 90):5.2f} {pct(r.delta_ms, 99):5.2f}"
            )
    print()
    print("hop split, ms (difference of percentiles)  | inbound p50   p99 | first audio p50   p99 "
          "| per delta p50   p99")  # fmt: skip
    for n in levels:
        for label, hi, lo in (("bridge hop  = bridge - direct", "bridge", "direct"),
                              ("ingress hop = full - bridge  ", "full", "bridge")):  # fmt: skip
            a, b = results[n][hi], results[n][lo]
            cols = []
            for attr in ("inbound_ms", "first_ms", "delta_ms"):
                va, vb = getattr(a, attr), getattr(b, attr)
                cols.append(f"{pct(va, 50) - pct(vb, 50):5.2f} {pct(va, 99) - pct(vb, 99):5.2f}")
            print(f"{n:3d} {label:38s} | {cols[0]:>17s} | {cols[1]:>21s} | {cols[2]:>19s}")
    for n in levels:
        for path in PATHS:
            for err in results[n][path].errors[:3]:
                print(f"error ({path}, N={n}): {err}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", default="1,10", help="comma list of concurrent sessions (default 1,10)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin rtvoice to CPU 0 and the load to CPU 1")
    ap.add_argument("--no-json", action="store_true", help="do not write bench/results/hops.json")
    a = ap.parse_args()
    asyncio.run(main([int(x) for x in a.sessions.split(",") if x], not a.no_pin, not a.no_json))
