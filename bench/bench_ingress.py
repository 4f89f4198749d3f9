"""Benchmark of the ingress relay: latency it adds per 20 ms frame, with 1 and 50 concurrent sessions.

Setup (all on 127.0.0.1): the real ``rtvoice ingress`` process; in this process, the fake bridge in echo
mode (``tests/support/fake_bridge.py``: each caller frame comes straight back as agent audio, stamped with
the bridge's receipt time) and N callers sending 640-byte PCM16 frames (20 ms at 16 kHz) at real-time
pace, each stamped with its send time. Clocks are the same ``CLOCK_MONOTONIC`` in both processes.

- inbound: caller WebSocket send → bridge gRPC receipt (ingress parse/validate/relay + both transports)
- outbound: bridge gRPC send → caller WebSocket receipt
- round trip: both.
Prints p50/p99/max in ms and the ingress's CPU per frame. The callers and the fake bridge share the
machine (2 cores here) with the ingress, so the numbers are an upper bound of what the ingress adds.

Run: ``.venv/bin/python bench/bench_ingress.py [--seconds 5] [--sessions 1 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402

from rtvoice.core.service import READY_PREFIX  # noqa: E402
from rtvoice.ingress.auth import mint_token  # noqa: E402
from tests.support.fake_bridge import FakeBridge  # noqa: E402

FRAME_BYTES = 640
FRAME_S = 0.020


def start_ingress(bridge: str, secret: bytes) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, RTVOICE_AUTH_SECRET=secret.decode(), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtvoice",
            "ingress",
            "--port",
            "0",
            "--bridge",
            bridge,
            "--log-level",
            "WARNING",
            "--max-frames-per-s",
            "1000",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(READY_PREFIX):
            return proc, int(json.loads(line[len(READY_PREFIX) :])["port"])
    raise RuntimeError("ingress did not start")


async def one_session(url: str, token: str, seconds: float, samples: dict[str, list[float]]) -> None:
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, compression=None) as ws:
        await ws.send(json.dumps({"type": "session.start"}))
        while json.loads(await ws.recv())["type"] != "session.started":
            pass

        async def receive() -> None:
            async for msg in ws:
                if isinstance(msg, bytes):
                    now = time.monotonic_ns()
                    sent, bridged = struct.unpack_from("<qq", msg)
                    samples["inbound"].append((bridged - sent) / 1e6)
                    samples["outbound"].append((now - bridged) / 1e6)
                    samples["round_trip"].append((now - sent) / 1e6)

        reader = asyncio.create_task(receive())
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < seconds:
            frame = bytearray(FRAME_BYTES)
            struct.pack_into("<q", frame, 0, time.monotonic_ns())
            await ws.send(bytes(frame))
            n += 1
            await asyncio.sleep(max(0.0, t0 + n * FRAME_S - time.monotonic()))
        await asyncio.sleep(0.2)
        reader.cancel()
        await ws.send(json.dumps({"type": "session.end"}))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(sessions_list: list[int], seconds: float) -> None:
    secret = secrets.token_hex(16).encode()
    bridge = await FakeBridge(echo=True).start()
    proc, port = start_ingress(bridge.address, secret)
    token = mint_token(secret, "bench", "echo", 3600)
    url = f"ws://127.0.0.1:{port}/v1/agents/bench/echo"
    try:
        print(f"ingress relay latency, 640-byte frames every 20 ms per session, {seconds:g} s per run")
        head = f"{'sessions':>8} {'frames':>7} {'path':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        print(f"{head}   CPU: ingress per relayed frame, this process (callers + fake bridge)")
        for n in sessions_list:
            samples: dict[str, list[float]] = {"inbound": [], "outbound": [], "round_trip": []}
            cpu0, own0, wall0 = cpu_s(proc.pid), cpu_s(os.getpid()), time.monotonic()
            await asyncio.gather(*(one_session(url, token, seconds, samples) for _ in range(n)))
            cpu = cpu_s(proc.pid) - cpu0
            own = (cpu_s(os.getpid()) - own0) / (time.monotonic() - wall0)
            frames = len(samples["round_trip"])
            per_frame_us = cpu / max(1, frames) * 1e6 / 2  # two relays (in and out) per echoed frame
            for path in ("inbound", "outbound", "round_trip"):
                v = samples[path]
                extra = f"   {per_frame_us:.0f} µs, {own:.0%} of a core" if path == "inbound" else ""
                p50, p99 = statistics.median(v), pct(v, 0.99)
                row = f"{n:>8} {frames:>7} {path:>10} {p50:8.2f} {p99:8.2f} {max(v):8.2f}"
                print(row + extra)
    finally:
        proc.terminate()
        proc.wait(15)
        await bridge.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 50])
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(run(args.sessions, args.seconds))
    except ImportError:
        asyncio.run(run(args.sessions, args.seconds))


if __name__ == "__main__":
    main()
