"""Authentication between services: the recorder refuses a bridge link without the internal token or
with a wrong one, the bridge refuses an ingress without it, health checks stay open, and a rotated token
file is picked up without a restart. Real gRPC servers and the offline engine on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from rtvoice.bridge.recorder_link import RecorderLink
from rtvoice.bridge.server import BridgeConfig, BridgeServer
from rtvoice.core.end_reason import end_frame
from rtvoice.core.internal_auth import InternalCredentials
from rtvoice.core.settings import load_agent_file
from rtvoice.v1 import frames_pb2 as pb
from rtvoice.v1 import recorder_pb2 as rpb
from rtvoice.v1 import recorder_pb2_grpc
from tests.support.cluster import PHRASES_AGENT
from tests.support.ingress import caller, running_ingress, token
from tests.support.localrt import local_realtime
from tests.support.recorder import record_start, running_recorder


def _token_file(path: Path, value: str) -> InternalCredentials:
    """Write ``value`` to ``path`` atomically (as the kubelet swaps a Secret) and read it back."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.replace(tmp, path)
    return InternalCredentials(path, check_interval_s=0.05)


def _refused(service: str) -> float:
    value = REGISTRY.get_sample_value(
        f"rtvoice_{service}_sessions_refused_total", {"code": "unauthenticated"}
    )
    return value or 0.0


async def test_recorder_refuses_a_link_without_or_with_a_wrong_token(tmp_path: Path) -> None:
    good = _token_file(tmp_path / "token", "the-right-token")
    wrong = _token_file(tmp_path / "wrong", "not-the-token")
    async with running_recorder(tmp_path, internal_credentials=good) as recorder:
        target = f"127.0.0.1:{recorder.port}"
        async with grpc.aio.insecure_channel(target) as channel:
            stub = recorder_pb2_grpc.RecorderStub(channel)
            for metadata in (None, wrong.metadata(), (("authorization", "the-right-token"),)):
                call = stub.Record(metadata=metadata)
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call.write(
                        rpb.RecordBatch(frames=[rpb.RecordFrame(seq=1, start=record_start("x"))])
                    )
                    await call.read()
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        before = _refused("recorder")
        for creds, sid in ((None, "no-token"), (wrong, "wrong-token"), (good, "right-token")):
            link = RecorderLink(target, record_start(sid), clock_t0_ns=0, reconnect=False, credentials=creds)
            link.open()
            link.record_client(pb.ClientFrame(text=pb.TextInput(text="hello")))
            uri = await link.close(end_frame(pb.END_REASON_CALLER_HANGUP), timeout_s=5)
            archived = (tmp_path / "archive" / sid / "manifest.json").exists()
            assert (uri is not None, archived) == (creds is good, creds is good), sid
        assert _refused("recorder") - before == 2


@contextlib.asynccontextmanager
async def _bridge(creds: InternalCredentials | None) -> AsyncIterator[BridgeServer]:
    doc = load_agent_file(PHRASES_AGENT)
    async with local_realtime(doc.spec.local_engine.phrases) as engine_url:
        server = BridgeServer(
            BridgeConfig(
                settings=doc.spec,
                provider_url=engine_url,
                agent_name=doc.name,
                agent_namespace=doc.namespace,
                internal_credentials=creds,
            )
        )
        await server.start()
        try:
            yield server
        finally:
            await server.stop(0)


async def _session(bridge: BridgeServer, creds: InternalCredentials | None) -> dict[str, object]:
    """One caller through an ingress holding ``creds``: the first of session.started / error."""
    async with (
        running_ingress(f"127.0.0.1:{bridge.port}", internal_credentials=creds) as ingress,
        caller(ingress.ws_url("default/weather"), token("default", "weather")) as c,
    ):
        await c.send({"type": "session.start"})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while loop.time() < deadline:
            for event in c.events:
                if event["type"] in ("session.started", "error"):
                    return event
            await asyncio.sleep(0.01)
        raise AssertionError(f"no answer; got {c.events}")


async def test_bridge_refuses_an_ingress_without_the_token_health_stays_open(tmp_path: Path) -> None:
    good = _token_file(tmp_path / "token", "bridge-token")
    wrong = _token_file(tmp_path / "wrong", "other-token")
    async with _bridge(good) as bridge:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{bridge.port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        before = _refused("bridge")
        for creds in (None, wrong):
            event = await _session(bridge, creds)
            assert (event["type"], event["code"], event["retryable"]) == ("error", "internal_auth", False)
        assert _refused("bridge") - before == 2
        assert not bridge.servicer.sessions
        assert (await _session(bridge, good))["type"] == "session.started"


async def test_a_rotated_token_file_is_used_without_a_restart(tmp_path: Path) -> None:
    bridge_file = tmp_path / "bridge-token"
    bridge_creds = _token_file(bridge_file, "old-token")
    async with _bridge(bridge_creds) as bridge:
        old = _token_file(tmp_path / "old", "old-token")
        new = _token_file(tmp_path / "new", "new-token")
        assert (await _session(bridge, old))["type"] == "session.started"
        assert (await _session(bridge, new))["type"] == "error"
        # Rotation step 1: both tokens accepted; step 2: only the new one.
        _token_file(bridge_file, "new-token\nold-token")
        await _until_accepted(bridge, new)
        assert (await _session(bridge, old))["type"] == "session.started"
        _token_file(bridge_file, "new-token")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while (await _session(bridge, old))["type"] != "error":
            assert loop.time() < deadline, "the old token is still accepted after the rotation"
        assert (await _session(bridge, new))["type"] == "session.started"


async def _until_accepted(bridge: BridgeServer, creds: InternalCredentials) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (await _session(bridge, creds))["type"] != "session.started":
        assert loop.time() < deadline, "the new token is not accepted after the rotation"
