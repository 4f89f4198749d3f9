"""Benchmark of bridge placement: sessions per bridge replica before the p99 added latency passes 50 ms
(with 1, 2 and 3 bridge processes), and how fast the ingress moves new calls off a draining bridge.

Setup, all on loopback: an echo provider (OpenAI GA protocol, its own process: every
``input_audio_buffer.append`` comes straight back as ``response.output_audio.delta``), N ``rtvoice bridge``
processes (recording off), one ``rtvoice ingress`` process with ``--bridge A,B,C``, and the callers in this
process. Each caller streams 20 ms PCM16 24 kHz frames every 20 ms (the provider's own format, so the bridge
passes the bytes through); the first 8 bytes carry the send time, so each echoed frame gives a round trip
caller → ingress → bridge → provider → bridge → ingress → caller.

*Added latency* of a step = p99 round trip at that load − p50 round trip of a single session (the idle
path). Steps grow the sessions per bridge until the added p99 passes ``--limit-ms`` (50).

Drain: 2 bridges, an in-process ingress placing a new 3 s call every 50 ms; one bridge gets SIGTERM; the
time until the ingress marks it NOT_SERVING (its health watch) is the move time; calls that still reached
it are retried on the other bridge (counted by the drained bridge's ``sessions_refused{code=draining}``).

Run: ``.venv/bin/python bench/bench_placement.py [--bridges 1 2 3] [--seconds 4] [--step 10]``.
The machine's other load (other benchmarks, tests) shows up in these numbers; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import websockets
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services"))
sys.path.insert(0, str(ROOT))

from rtvoice.core.service import READY_PREFIX  # noqa: E402
from rtvoice.ingress.auth import mint_token  # noqa: E402

FRAME_MS = 20
FRAME_BYTES = 24 * FRAME_MS * 2  # PCM16 24 kHz mono
SECRET = b"bench-placement-secret-0123456789abcdef"
AGENT = "spec: {provider: openai, modalities: audio, turnDetection: {type: none}}\n"


# ------------------------------------------------------------------------------------------ echo provider


async def _echo(ws: Any) -> None:
    session = {"type": "realtime", "id": "sess_bench", "object": "realtime.session"}
    await ws.send(json.dumps({"type": "session.created", "event_id": "e0", "session": session}))
    head = '{"type":"response.output_audio.delta","event_id":"e","response_id":"resp_b","item_id":"item_b",'
    head += '"output_index":0,"content_index":0,"delta":"'
    started = False
    try:
        async for raw in ws:
            if (
                raw.startswith('{"type":"input_audio_buffer.append"')
                or '"input_audio_buffer.append"' in raw[:60]
            ):
                audio = json.loads(raw)["audio"]
                await ws.send(head + audio + '"}')
            elif '"session.update"' in raw[:40]:
                await ws.send(json.dumps({"type": "session.updated", "event_id": "e1", "session": session}))
                if not started:
                    started = True
                    created = {"type": "response.created", "event_id": "e2", "response": {"id": "resp_b"}}
                    await ws.send(json.dumps(created))
    except websockets.ConnectionClosed:
        pass


def serve_echo() -> int:
    async def main() -> None:
        async with websockets.serve(_echo, "127.0.0.1", 0, compression=None, max_size=None) as server:
            port = server.sockets[0].getsockname()[1]
            print(READY_PREFIX + json.dumps({"port": port}), flush=True)
            await asyncio.Future()

    try:
        import uvloop

        uvloop.run(main())
    except KeyboardInterrupt:
        pass
    return 0


# ------------------------------------------------------------------------------------------ processes


async def _spawn(
    argv: list[str], env: dict[str, str], log: Path
) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=err, env=env, cwd=ROOT
        )
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line:
            raise RuntimeError(f"{argv[:4]} exited before it was ready")
        if line.startswith(READY_PREFIX):
            return proc, json.loads(line[len(READY_PREFIX) :])


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class Stack:
    """Echo provider + bridges (+ an ingress process unless ``ingress=False``)."""

    def __init__(self, bridges: int, tmp: Path, ingress: bool = True) -> None:
        self.n = bridges
        self.tmp = tmp
        self.with_ingress = ingress
        self.procs: list[asyncio.subprocess.Process] = []
        self.bridges: list[tuple[asyncio.subprocess.Process, dict[str, Any]]] = []
        self.ingress_port = 0
        self.env = {
            **os.environ,
            "RTVOICE_PROVIDER_API_KEY": "sk-bench",
            "RTVOICE_AUTH_SECRET": SECRET.decode(),
            "PYTHONPATH": str(ROOT / "services"),
        }

    async def __aenter__(self) -> Stack:
        agent = self.tmp / "agent.yaml"
        agent.write_text(AGENT)
        echo, ready = await _spawn(
            [sys.executable, __file__, "--serve-echo"], self.env, self.tmp / "echo.log"
        )
        self.procs.append(echo)
        url = f"ws://127.0.0.1:{ready['port']}/v1/realtime"
        for _ in range(self.n):
            argv = [sys.executable, "-m", "rtvoice", "bridge", "--port", "0", "--agent-file", str(agent),
                    "--provider-url", url, "--log-level", "WARNING", "--metrics-port", "0",
                    "--drain-timeout-s", "30", "--max-loop-lag-ms", "0"]  # fmt: skip
            self.bridges.append(await _spawn(argv, self.env, self.tmp / f"bridge-{len(self.bridges)}.log"))
            self.procs.append(self.bridges[-1][0])
        if self.with_ingress:
            target = ",".join(f"127.0.0.1:{r['port']}" for _, r in self.bridges)
            argv = [sys.executable, "-m", "rtvoice", "ingress", "--port", "0", "--bridge", target,
                    "--log-level", "WARNING", "--max-loop-lag-ms", "0"]  # fmt: skip
            proc, ready = await _spawn(argv, self.env, self.tmp / "ingress.log")
            self.procs.append(proc)
            self.ingress_port = int(ready["port"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            await _stop(proc)


# ------------------------------------------------------------------------------------------ callers


class _Tally:
    """Round trips (ms) of echoed frames sent after ``warm_at``, frames sent then, and failed calls."""

    def __init__(self, warm_at: float) -> None:
        self.warm_at = warm_at
        self.rtts: list[float] = []
        self.sent = 0
        self.failed: list[str] = []


async def _caller(url: str, token: str, seconds: float, tally: _Tally) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with connect(url, additional_headers=headers, compression=None) as ws:
            start = {"type": "session.start", "input_format": "pcm16_24k", "output_format": "pcm16_24k"}
            await ws.send(json.dumps(start))
            while True:
                msg = await ws.recv()
                if isinstance(msg, str) and (kind := json.loads(msg)["type"]) in (
                    "session.started",
                    "session.ended",
                ):
                    break
            if kind != "session.started":
                tally.failed.append("refused")
                return

            async def receive() -> None:
                async for msg in ws:
                    if isinstance(msg, bytes) and len(msg) >= 8:
                        now = time.monotonic_ns()
                        (sent,) = struct.unpack_from("<q", msg)
                        if sent / 1e9 >= tally.warm_at:
                            tally.rtts.append((now - sent) / 1e6)

            reader = asyncio.create_task(receive())
            t0 = time.monotonic()
            n = 0
            while time.monotonic() - t0 < seconds:
                frame = bytearray(FRAME_BYTES)
                now_ns = time.monotonic_ns()
                struct.pack_into("<q", frame, 0, now_ns)
                await ws.send(bytes(frame))
                tally.sent += now_ns / 1e9 >= tally.warm_at
                n += 1
                await asyncio.sleep(max(0.0, t0 + n * FRAME_MS / 1000 - time.monotonic()))
            await asyncio.sleep(0.3)  # the last echoes
            reader.cancel()
            await ws.send(json.dumps({"type": "session.end"}))
    except (OSError, websockets.WebSocketException) as err:
        tally.failed.append(type(err).__name__)


async def _step(port: int, sessions: int, seconds: float) -> dict[str, float]:
    url = f"ws://127.0.0.1:{port}/v1/agents/default/default"
    token = mint_token(SECRET, "default", "default", 600)
    tally = _Tally(time.monotonic() + 1.0)  # the first second (session set-up) does not count
    await asyncio.gather(*(_caller(url, token, seconds + 1.0, tally) for _ in range(sessions)))
    arr = np.array(tally.rtts) if tally.rtts else np.array([float("nan")])
    return {
        "p50": float(np.percentile(arr, 50)),
        "p99": float(np.percentile(arr, 99)),
        "frames": len(tally.rtts),
        "delivered": len(tally.rtts) / tally.sent if tally.sent else 0.0,
        "failed": len(tally.failed),
    }


async def capacity(bridges: int, seconds: float, step: int, limit_ms: float, max_per_bridge: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with Stack(bridges, Path(tmp)) as stack:
            base = await _step(stack.ingress_port, 1, seconds)
            print(f"bridges={bridges}: idle round trip p50 {base['p50']:.1f} ms p99 {base['p99']:.1f} ms")
            best = 0
            per = step
            while per <= max_per_bridge:
                total = per * bridges
                res = await _step(stack.ingress_port, total, seconds)
                added = res["p99"] - base["p50"]
                ok = added <= limit_ms and res["delivered"] > 0.99 and not res["failed"]
                print(f"  {per:4d}/bridge ({total:4d} sessions): round trip p50 {res['p50']:7.1f} ms "
                      f"p99 {res['p99']:7.1f} ms, added p99 {added:7.1f} ms, "
                      f"delivered {res['delivered']:.1%}, failed calls {res['failed']:.0f} "
                      f"{'ok' if ok else 'OVER'}")  # fmt: skip
                if not ok:
                    break
                best = per
                per += step
            print(f"bridges={bridges}: {best} sessions per bridge before the added p99 passes "
                  f"{limit_ms:g} ms ({best * bridges} in total)")  # fmt: skip


async def drain_move_time(seconds: float) -> None:
    from rtvoice.ingress.endpoints import Health
    from rtvoice.ingress.server import IngressConfig, IngressServer
    from tests.support.cluster import call_once, scrape

    with tempfile.TemporaryDirectory() as tmp:
        async with Stack(2, Path(tmp), ingress=False) as stack:
            target = ",".join(f"127.0.0.1:{r['port']}" for _, r in stack.bridges)
            server = IngressServer(IngressConfig(bridge=target, auth_secret=SECRET, max_loop_lag_ms=0))
            await server.start()
            token = mint_token(SECRET, "default", "default", 600)
            url = server.ws_url("default/default")
            calls: list[asyncio.Task[Any]] = []
            victim, victim_ready = stack.bridges[0]
            victim_addr = f"127.0.0.1:{victim_ready['port']}"
            try:
                for _ in range(20):  # warm up: both bridges carry calls
                    calls.append(asyncio.create_task(call_once(url, token, hold_s=3.0)))
                    await asyncio.sleep(0.05)
                t0 = time.monotonic()
                victim.send_signal(signal.SIGTERM)
                moved_at = None
                while time.monotonic() - t0 < seconds:
                    calls.append(asyncio.create_task(call_once(url, token, hold_s=3.0)))
                    for ep in server.router.endpoints():
                        if ep.address == victim_addr and ep.health is Health.NOT_SERVING and moved_at is None:
                            moved_at = time.monotonic()
                    await asyncio.sleep(0.002 if moved_at is None else 0.05)
                metrics = await scrape(f"http://127.0.0.1:{victim_ready['metrics_port']}/metrics")
                outcomes = await asyncio.gather(*calls)
            finally:
                await server.drain(0)
                await server.close()
            problems = [
                line
                for log in sorted(Path(tmp).glob("*.log"))  # noqa: ASYNC240 - after the run
                for line in log.read_text(errors="replace").splitlines()
                if " ERROR " in line or "Error:" in line
            ]
    refused_at_bridge = metrics.get("rtvoice_bridge_sessions_refused_total{code=draining}", 0.0)
    failed = [o for o in outcomes if o.started is None]
    move = "never" if moved_at is None else f"{(moved_at - t0) * 1000:.1f} ms"
    print(f"drain: ingress marked the draining bridge NOT_SERVING after {move}; "
          f"{refused_at_bridge:.0f} start(s) refused there with 'draining' and retried elsewhere; "
          f"{len(failed)} of {len(outcomes)} calls failed")  # fmt: skip
    for o in failed:
        print(f"  failed call: HTTP {o.http_status}, errors {o.errors}, ended {o.ended}")
    for line in problems[:20]:
        print(f"  service log: {line}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bridges", type=int, nargs="*", default=[1, 2, 3], help="bridge counts to measure")
    parser.add_argument("--seconds", type=float, default=4.0, help="streaming time per step, s")
    parser.add_argument("--step", type=int, default=10, help="sessions per bridge added per step")
    parser.add_argument("--max-per-bridge", type=int, default=200)
    parser.add_argument("--limit-ms", type=float, default=50.0)
    parser.add_argument("--no-drain", action="store_true", help="skip the drain measurement")
    args = parser.parse_args()
    if args.serve_echo:
        return serve_echo()
    print(f"bench_placement on {os.cpu_count()} CPU(s); load average {os.getloadavg()[0]:.1f}")

    async def run() -> None:
        for n in args.bridges:
            await capacity(n, args.seconds, args.step, args.limit_ms, args.max_per_bridge)
        if not args.no_drain:
            await drain_move_time(2.0)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
