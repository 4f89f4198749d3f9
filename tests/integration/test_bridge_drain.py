"""Bridge draining: SIGTERM to a real ``rtvoice bridge`` process, health NOT_SERVING, new sessions refused,
the live session finishes, exit 0; and the drain timeout ending the rest with a typed reconnect event."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rtvoice.v1 import frames_pb2 as pb
from tests.support.bridge import ConverseClient, openai_call, utterance
from tests.support.fake_openai import VALID_KEY, FakeOpenAI, Scenario

REPO = Path(__file__).resolve().parents[2]


async def health_status(target: str) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(
            health_pb2.HealthCheckRequest(service="rtvoice.v1.RealtimeBridge"), timeout=5
        )
        return int(reply.status)


async def start_bridge_process(agent_file: Path, provider_url: str) -> tuple[asyncio.subprocess.Process, int]:
    env = {**os.environ, "RTVOICE_PROVIDER_API_KEY": VALID_KEY, "PYTHONPATH": str(REPO / "services")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rtvoice", "bridge", "--agent-file", str(agent_file),
        "--provider-url", provider_url, "--port", "0", "--drain-timeout-s", "20",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=REPO,
    )  # fmt: skip
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line, "bridge exited before RTVOICE_READY"
        if line.startswith("RTVOICE_READY "):
            info = json.loads(line.split(" ", 1)[1])
            assert info["service"] == "bridge"
            return proc, int(info["port"])


async def test_sigterm_finishes_live_session_and_refuses_new_ones(tmp_path: Path) -> None:
    agent = tmp_path / "agent.yaml"
    agent.write_text(
        "apiVersion: rtvoice.io/v1alpha1\nkind: VoiceAgent\nmetadata: {name: drain-test}\n"
        "spec: {provider: openai, turnDetection: {type: server_vad, silenceDurationMs: 200}}\n"
    )
    async with FakeOpenAI(Scenario()) as fake:
        proc, port = await start_bridge_process(agent, fake.url)
        target = f"127.0.0.1:{port}"
        try:
            assert await health_status(target) == health_pb2.HealthCheckResponse.SERVING
            async with ConverseClient(target) as live:
                assert (await live.start()).WhichOneof("frame") == "ready"
                proc.send_signal(signal.SIGTERM)
                for _ in range(100):
                    if await health_status(target) == health_pb2.HealthCheckResponse.NOT_SERVING:
                        break
                    await asyncio.sleep(0.05)
                assert await health_status(target) == health_pb2.HealthCheckResponse.NOT_SERVING
                async with ConverseClient(target) as late:
                    refused = await late.start()
                    assert (
                        refused.end.reason == pb.END_REASON_BRIDGE_REFUSED
                        and refused.end.detail == "draining"
                    )
                    (err,) = late.of_kind("error")
                    assert err.kind == pb.ERROR_KIND_UNAVAILABLE and err.code == "draining" and err.retryable
                # the live session still works during the drain ...
                await live.send_audio(utterance())
                done = await live.wait_for("response_done")
                assert done.response_done.status == "completed"
                await live.send(pb.ClientFrame(end=pb.EndFrame(reason=pb.END_REASON_CALLER_HANGUP)))
                end = await live.wait_for("end")
                assert end.end.reason == pb.END_REASON_CALLER_HANGUP
            # ... and once it has ended the process exits by itself, successfully
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert live.of_kind("error") == []


async def test_drain_timeout_ends_remaining_sessions_with_reconnect() -> None:
    async with openai_call() as oc:
        ended = await oc.bridge.server.drain(timeout_s=0.2)
        end = await oc.call.wait_for("end")
    assert ended == 1
    assert end.end.reason == pb.END_REASON_BRIDGE_SHUTDOWN
    (err,) = oc.call.of_kind("error")
    assert err.kind == pb.ERROR_KIND_UNAVAILABLE and err.code == "reconnect" and err.retryable and err.fatal
    assert oc.manifest is not None and oc.manifest["end_reason"] == "bridge_shutdown"
